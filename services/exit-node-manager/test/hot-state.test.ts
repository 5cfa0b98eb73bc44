import { describe, expect, it } from 'vitest';
import type { NodeMetrics } from '@switchyard/contracts';
import { redisHotState, redisStatsStore, type HashStore } from '../src/hot-state.js';

/** An in-memory stand-in for the three Redis hash calls the manager makes. */
function memoryStore(): HashStore & { keys: Map<string, Record<string, string>> } {
  const keys = new Map<string, Record<string, string>>();
  return {
    keys,
    async hset(key, fields) {
      keys.set(key, { ...(keys.get(key) ?? {}), ...fields });
    },
    async hgetall(key) {
      return keys.get(key) ?? {};
    },
    async del(key) {
      keys.delete(key);
    },
  };
}

const log = { info: () => undefined, warn: () => undefined, debug: () => undefined };
const node = { tenantId: 't', poolId: 'p', nodeId: 'n1' };
const metrics: NodeMetrics = {
  cpuPercent: 1,
  memoryMb: 2,
  memoryPercent: 3,
  rxBytes: 4,
  txBytes: 5,
  rxPackets: 6,
  txPackets: 7,
  at: '2026-01-01T00:00:00.000Z',
};

describe('redis hot state', () => {
  it('keeps node:<id> while the node lives and deletes it, with stats:<id>, when it is removed', async () => {
    const redis = memoryStore();
    const hot = redisHotState(redis, log);
    const stats = redisStatsStore(redis, log);
    await hot({ ...node, status: 'running' });
    await stats.write('n1', metrics);
    expect(redis.keys.get('node:n1')).toMatchObject({ status: 'running', pool: 'p', tenant: 't' });
    expect([...redis.keys.keys()].sort()).toEqual(['node:n1', 'stats:n1']);
    await hot({ ...node, status: 'stopped' });
    expect(redis.keys.get('node:n1')).toMatchObject({ status: 'stopped' });
    await hot({ ...node, status: 'removed' });
    await stats.forget('n1');
    expect([...redis.keys.keys()]).toEqual([]);
  });
});
