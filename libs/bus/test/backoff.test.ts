import { describe, expect, it } from 'vitest';
import { backoffDelay } from '../src/backoff.js';

describe('backoffDelay', () => {
  it('starts at initialMs, doubles, and stops growing at maxMs', () => {
    const policy = { initialMs: 500, maxMs: 30_000 };
    expect([1, 2, 3, 6, 7, 8, 1000].map((n) => backoffDelay(policy, n))).toEqual([500, 1000, 2000, 16_000, 30_000, 30_000, 30_000]);
  });

  it('takes a growth factor, and treats attempts below 1 as the first', () => {
    expect(backoffDelay({ initialMs: 100, maxMs: 10_000, factor: 3 }, 3)).toBe(900);
    expect(backoffDelay({ initialMs: 100, maxMs: 10_000 }, 0)).toBe(100);
  });
});
