import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { REJECTED_KEY, TrafficCounters } from '../src/counters.js';

/** Records what a flush would add; `fail` makes the next exec reject, as a lost connection does. */
function fakeRedis() {
  const hashes = new Map<string, Map<string, number>>();
  let fail = false;
  const redis = {
    pipeline() {
      const ops: Array<[string, string, number]> = [];
      return {
        hincrby(key: string, field: string, n: number) {
          ops.push([key, field, n]);
        },
        async exec() {
          if (fail) {
            fail = false;
            throw new Error('Connection is closed.');
          }
          for (const [key, field, n] of ops) {
            const h = hashes.get(key) ?? new Map<string, number>();
            h.set(field, (h.get(field) ?? 0) + n);
            hashes.set(key, h);
          }
          return [];
        },
      };
    },
    async del(key: string) {
      return hashes.delete(key) ? 1 : 0;
    },
  };
  return { redis: redis as unknown as Redis, hashes, failNext: () => (fail = true) };
}

describe('traffic counters', () => {
  it('keeps the deltas of a flush that failed for the next one', async () => {
    const { redis, hashes, failNext } = fakeRedis();
    const c = new TrafficCounters();
    const t = c.of('a');
    t.opened();
    t.dTotal++;
    t.dRx += 100;
    c.reject('auth');
    failNext();
    await expect(c.flush(redis)).rejects.toThrow('Connection is closed.');
    expect(hashes.size).toBe(0);
    t.dTx += 7;
    await c.flush(redis);
    expect(Object.fromEntries(hashes.get('lb:traffic:a')!)).toEqual({ active: 1, total: 1, rx: 100, tx: 7 });
    expect(Object.fromEntries(hashes.get(REJECTED_KEY)!)).toEqual({ auth: 1 });
  });

  it("deletes a removed node's hash and drops its pending deltas so no flush brings it back", async () => {
    const { redis, hashes } = fakeRedis();
    const c = new TrafficCounters();
    c.of('a').opened();
    await c.flush(redis);
    c.of('a').dTotal++;
    await c.forget(redis, 'a');
    await c.flush(redis);
    expect(hashes.has('lb:traffic:a')).toBe(false);
  });
});
