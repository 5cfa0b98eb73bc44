import type { NodeMetrics } from '@switchyard/contracts';
import type { HotState, Log, StatsStore } from './ports.js';
import { metricsFromHash, metricsToHash } from './stats.js';

/** The Redis calls this service makes (satisfied by an ioredis client). */
export interface HashStore {
  hset(key: string, fields: Record<string, string>): Promise<unknown>;
  hgetall(key: string): Promise<Record<string, string>>;
  del(key: string): Promise<unknown>;
}

// Hot state can be rebuilt from events and rows, so an unreachable Redis must neither fail
// an order nor hold it up for ioredis's reconnect attempts.
const TIMEOUT_MS = 500;

async function bounded<T>(work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export function redisHotState(redis: HashStore | undefined, log: Log): HotState {
  return async ({ tenantId, poolId, nodeId, status }) => {
    if (!redis) return;
    try {
      // A removed node never comes back (a new one gets a new id): its key goes, or Redis
      // would keep one per node ever made.
      if (status === 'removed') await bounded(redis.del(`node:${nodeId}`));
      else await bounded(redis.hset(`node:${nodeId}`, { status, pool: poolId, tenant: tenantId, updated_at: new Date().toISOString() }));
    } catch (err) {
      log.warn({ nodeId, status, err: (err as Error).message }, 'could not write node hot state to redis');
    }
  };
}

export function redisStatsStore(redis: HashStore | undefined, log: Log): StatsStore {
  return {
    async write(nodeId, metrics) {
      if (!redis) return;
      try {
        await bounded(redis.hset(`stats:${nodeId}`, metricsToHash(metrics)));
      } catch (err) {
        log.warn({ nodeId, err: (err as Error).message }, 'could not write node stats to redis');
      }
    },
    async read(nodeIds) {
      const out = new Map<string, NodeMetrics | null>(nodeIds.map((id) => [id, null]));
      if (!redis || nodeIds.length === 0) return out;
      try {
        const hashes = await bounded(Promise.all(nodeIds.map((id) => redis.hgetall(`stats:${id}`))));
        nodeIds.forEach((id, i) => out.set(id, metricsFromHash(hashes[i])));
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'could not read node stats from redis; views go without them');
      }
      return out;
    },
    async forget(nodeId) {
      if (!redis) return;
      try {
        await bounded(redis.del(`stats:${nodeId}`));
      } catch (err) {
        log.warn({ nodeId, err: (err as Error).message }, 'could not delete node stats from redis');
      }
    },
  };
}
