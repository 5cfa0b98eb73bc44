import { afterEach, describe, expect, it, vi } from 'vitest';
import { Resync } from '../src/resync.js';

describe('resync', () => {
  afterEach(() => vi.useRealTimers());

  it('coalesces requests: one rebuild runs, at most one more follows', async () => {
    let runs = 0;
    let release!: () => void;
    const r = new Resync(
      async () => {
        runs++;
        await new Promise<void>((resolve) => (release = resolve));
      },
      { periodMs: 60_000, retryMs: 1000, onError: () => undefined },
    );
    r.request();
    r.request();
    r.request();
    expect(runs).toBe(1);
    release();
    await new Promise((resolve) => setImmediate(resolve));
    expect(runs).toBe(2);
    release();
    await r.settled();
    expect(runs).toBe(2);
    r.stop();
  });

  it('rebuilds every period, and retries a failed rebuild sooner', async () => {
    vi.useFakeTimers();
    const errors: string[] = [];
    let fail = true;
    let runs = 0;
    const r = new Resync(
      async () => {
        runs++;
        if (fail) throw new Error('no answer from pool.req.snapshot');
      },
      { periodMs: 30_000, retryMs: 1000, onError: (e) => errors.push(e.message) },
    );
    r.request();
    await r.settled();
    expect(errors).toEqual(['no answer from pool.req.snapshot']);
    fail = false;
    await vi.advanceTimersByTimeAsync(1000);
    expect(runs).toBe(2);
    await vi.advanceTimersByTimeAsync(29_000);
    expect(runs).toBe(2);
    await vi.advanceTimersByTimeAsync(1000);
    expect(runs).toBe(3);
    r.stop();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(runs).toBe(3);
  });
});
