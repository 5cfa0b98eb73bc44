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
      { periodMs: 60_000, retry: { initialMs: 1000, maxMs: 1000 }, onError: () => undefined },
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
      { periodMs: 30_000, retry: { initialMs: 1000, maxMs: 1000 }, onError: (e) => errors.push(e.message) },
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

  it('backs off while rebuilds keep failing, and starts over after one works', async () => {
    vi.useFakeTimers();
    const at: number[] = [];
    const failures: number[] = [];
    let fail = true;
    const start = Date.now();
    const r = new Resync(
      async () => {
        at.push(Date.now() - start);
        if (fail) throw new Error('exit-node-manager is down');
      },
      { retry: { initialMs: 250, maxMs: 1000 }, onError: (_e, n) => failures.push(n) },
    );
    r.request();
    await vi.advanceTimersByTimeAsync(250 + 500 + 1000 + 1000);
    expect(at).toEqual([0, 250, 750, 1750, 2750]);
    expect(failures).toEqual([1, 2, 3, 4, 5]);
    fail = false;
    await vi.advanceTimersByTimeAsync(1000);
    expect(at).toHaveLength(6);
    // Without a period, a rebuild that worked waits for the next request.
    await vi.advanceTimersByTimeAsync(60_000);
    expect(at).toHaveLength(6);
    fail = true;
    r.request();
    await vi.advanceTimersByTimeAsync(250);
    expect(failures).toEqual([1, 2, 3, 4, 5, 1, 2]);
    await r.stop();
  });

  it('without a retry or a period, waits for the next request after a failure', async () => {
    vi.useFakeTimers();
    let runs = 0;
    const r = new Resync(
      async () => {
        runs++;
        throw new Error('Postgres is down');
      },
      { onError: () => undefined },
    );
    r.request();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(runs).toBe(1);
    r.request();
    await r.settled();
    expect(runs).toBe(2);
    await r.stop();
  });
});
