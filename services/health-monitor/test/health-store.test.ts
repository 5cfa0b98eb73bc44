import { afterEach, describe, expect, it, vi } from 'vitest';
import type { NodeHealth } from '@switchyard/contracts';
import { aNodeHealth } from '@switchyard/testkit/fixtures';
import { HealthStore, type RedisLike } from '../src/health-store.js';

const record = (nodeId: string): NodeHealth =>
  aNodeHealth(
    { tenantId: '0c0ffee0-1234-4abc-8def-0123456789ab', poolId: '11111111-2222-4333-8444-555555555555', nodeId },
    { score: 97, latencyMs: 1.5, lastCheckAt: '2026-01-01T00:00:00.000Z', reason: '2 checks passed' },
  );

function fakeRedis() {
  const batches: string[][] = [];
  const redis: RedisLike = {
    pipeline() {
      const ops: string[] = [];
      return {
        hset: (key) => ops.push(`hset ${key}`),
        del: (key) => ops.push(`del ${key}`),
        exec: async () => batches.push(ops),
      };
    },
  };
  return { redis, batches };
}

describe('health store', () => {
  afterEach(() => vi.useRealTimers());

  it('writes changed nodes in one pipeline per flush, and deletes forgotten ones', async () => {
    const { redis, batches } = fakeRedis();
    const store = new HealthStore(redis, record, { warn: () => undefined });
    store.changed('a');
    store.changed('b');
    store.changed('a');
    store.forget('c');
    await store.flush();
    expect(batches).toEqual([['hset health:a', 'hset health:b', 'del health:c']]);
    await store.flush();
    expect(batches).toHaveLength(1);
  });

  it('writes a routine check at most every refresh interval, anything else at the next flush', async () => {
    vi.useFakeTimers({ toFake: ['performance', 'setTimeout', 'clearTimeout'] });
    const { redis, batches } = fakeRedis();
    const store = new HealthStore(redis, record, { warn: () => undefined }, 1000, 5000);
    store.changed('a');
    await store.flush();
    store.changed('a', true);
    await store.flush();
    expect(batches).toHaveLength(1);
    store.changed('a');
    await store.flush();
    expect(batches).toHaveLength(2);
    vi.advanceTimersByTime(5000);
    store.changed('a', true);
    await store.flush();
    expect(batches).toHaveLength(3);
  });
});
