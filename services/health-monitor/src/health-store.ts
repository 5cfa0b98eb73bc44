import type { NodeHealth } from '@switchyard/contracts';

/** The Redis calls this service makes (satisfied by an ioredis client). */
export interface RedisLike {
  pipeline(): {
    hset(key: string, fields: Record<string, string>): unknown;
    del(key: string): unknown;
    exec(): Promise<unknown>;
  };
}

export interface Log {
  warn(obj: object, msg: string): void;
}

const healthKey = (nodeId: string) => `health:${nodeId}`;

function toHash(h: NodeHealth): Record<string, string> {
  return {
    status: h.status,
    score: String(h.score),
    latencyMs: h.latencyMs === null ? '' : String(h.latencyMs),
    lastCheckAt: h.lastCheckAt ?? '',
    reason: h.reason,
    tenant: h.tenantId,
    pool: h.poolId,
  };
}

/**
 * `health:<nodeId>` hashes, written by this service alone. A thousand checks a second would be
 * a thousand round trips; instead changed nodes are marked and written together, in one
 * pipeline, every `flushMs`. A routine check (only latency and time changed) is written at
 * most every `refreshMs` per node; a change of status, score or reason with the next flush.
 * Redis is hot state that can be rebuilt, so a failed write is logged and retried with the
 * next flush; `health.req.status` is the exact, current answer.
 */
export class HealthStore {
  private readonly dirty = new Set<string>();
  private readonly gone = new Set<string>();
  private readonly writtenAt = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;

  constructor(
    private readonly redis: RedisLike,
    private readonly read: (nodeId: string) => NodeHealth | undefined,
    private readonly log: Log,
    private readonly flushMs = 1000,
    private readonly refreshMs = 5000,
  ) {}

  changed(nodeId: string, routine = false): void {
    if (routine && performance.now() - (this.writtenAt.get(nodeId) ?? -Infinity) < this.refreshMs) return;
    this.gone.delete(nodeId);
    this.dirty.add(nodeId);
    this.timer ??= setTimeout(() => void this.flush(), this.flushMs).unref();
  }

  forget(nodeId: string): void {
    this.dirty.delete(nodeId);
    this.gone.add(nodeId);
    this.timer ??= setTimeout(() => void this.flush(), this.flushMs).unref();
  }

  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.flushing;
    if (this.dirty.size === 0 && this.gone.size === 0) return;
    const dirty = [...this.dirty];
    const gone = [...this.gone];
    this.dirty.clear();
    this.gone.clear();
    const pipe = this.redis.pipeline();
    const now = performance.now();
    for (const id of dirty) {
      const h = this.read(id);
      if (!h) continue;
      pipe.hset(healthKey(id), toHash(h));
      this.writtenAt.set(id, now);
    }
    for (const id of gone) {
      pipe.del(healthKey(id));
      this.writtenAt.delete(id);
    }
    this.flushing = pipe.exec().then(
      () => undefined,
      (err: unknown) => {
        this.log.warn({ err: (err as Error).message, nodes: dirty.length }, 'could not write health to redis');
        for (const id of dirty) if (!this.gone.has(id)) this.changed(id);
        for (const id of gone) if (!this.dirty.has(id)) this.forget(id);
      },
    );
    await this.flushing;
  }
}
