import type { HotState, Log } from './handlers.js';

/** The one Redis call this service makes (satisfied by an ioredis client). */
export interface HashWriter {
  hset(key: string, fields: Record<string, string>): Promise<unknown>;
}

// Hot state can be rebuilt from events and rows, so an unreachable Redis must neither fail
// an order nor hold it up for ioredis's reconnect attempts.
const WRITE_TIMEOUT_MS = 500;

export function redisHotState(redis: HashWriter | undefined, log: Log): HotState {
  return async ({ tenantId, poolId, nodeId, status }) => {
    if (!redis) return;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        redis.hset(`node:${nodeId}`, { status, pool: poolId, tenant: tenantId, updated_at: new Date().toISOString() }),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${WRITE_TIMEOUT_MS} ms`)), WRITE_TIMEOUT_MS);
        }),
      ]);
    } catch (err) {
      log.warn({ nodeId, status, err: (err as Error).message }, 'could not write node hot state to redis');
    } finally {
      clearTimeout(timer);
    }
  };
}
