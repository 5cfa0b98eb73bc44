import { describe, expect, it } from 'vitest';
import { eventually, rejectionOf } from '../src/async.js';

describe('eventually', () => {
  it('returns the first value that is done, reading no more after it', async () => {
    let reads = 0;
    const value = await eventually(
      () => ++reads,
      (n) => n === 3,
      1_000,
      'three reads',
      { intervalMs: 1 },
    );
    expect(value).toBe(3);
    expect(reads).toBe(3);
  });

  it('throws after the timeout, naming what it waited for and the last value', async () => {
    let reads = 0;
    const err = await rejectionOf(
      eventually(
        () => ({ reads: ++reads }),
        () => false,
        50,
        'the impossible',
        { intervalMs: 10 },
      ),
    );
    expect(String(err)).toMatch(/^Error: the impossible: not within 50 ms; last seen \{"reads":\d+\}$/);
    // Bounded: about one read per interval, and one more at the deadline.
    expect(reads).toBeGreaterThanOrEqual(2);
    expect(reads).toBeLessThanOrEqual(7);
  });

  it('with returnLast, resolves with the last value instead of throwing', async () => {
    await expect(
      eventually(
        () => 'not yet',
        () => false,
        20,
        'never',
        { intervalMs: 5, returnLast: true },
      ),
    ).resolves.toBe('not yet');
  });

  it('ends at once when a read fails', async () => {
    let reads = 0;
    const read = async () => {
      reads++;
      throw new Error('down');
    };
    await expect(eventually(read, () => true, 1_000, 'a failing read')).rejects.toThrow('down');
    expect(reads).toBe(1);
  });
});
