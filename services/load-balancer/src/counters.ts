import type { Redis } from 'ioredis';

/**
 * Per-node counters of this process. The data plane bumps plain numbers; a timer adds the
 * deltas to Redis (`lb:traffic:<nodeId>`, HINCRBY, so every worker and process adds to the
 * same hash) about once a second instead of once per connection or byte.
 */
export class NodeTraffic {
  /** Connections open from this process now (what least_connections compares). */
  active = 0;
  // Deltas not yet in Redis.
  dActive = 0;
  dTotal = 0;
  dFailed = 0;
  dRx = 0;
  dTx = 0;

  opened(): void {
    this.active++;
    this.dActive++;
  }

  closed(): void {
    this.active--;
    this.dActive--;
  }
}

/**
 * denied: a destination the policy forbids (the load balancer's, or the node's after it
 * resolved a name); limit: over the per-client connection cap.
 */
export type RejectReason = 'malformed' | 'auth' | 'denied' | 'limit' | 'unavailable' | 'failed';

export const trafficKey = (nodeId: string) => `lb:traffic:${nodeId}`;
/** Counts of client requests refused before reaching a node, by reason. */
export const REJECTED_KEY = 'lb:rejected';

export class TrafficCounters {
  private readonly nodes = new Map<string, NodeTraffic>();
  private readonly rejected = new Map<RejectReason, number>();

  of(nodeId: string): NodeTraffic {
    let t = this.nodes.get(nodeId);
    if (!t) {
      t = new NodeTraffic();
      this.nodes.set(nodeId, t);
    }
    return t;
  }

  reject(reason: RejectReason): void {
    this.rejected.set(reason, (this.rejected.get(reason) ?? 0) + 1);
  }

  /** Pretends every open connection closed: used at shutdown, when they are about to. */
  abandonOpen(): void {
    for (const t of this.nodes.values()) {
      t.dActive -= t.active;
      t.active = 0;
    }
  }

  /**
   * A removed node's counters go with it: its pending deltas are dropped (so a later flush
   * cannot bring the key back) and its hash deleted. Every worker does this; DEL is idempotent.
   */
  async forget(redis: Redis, nodeId: string): Promise<void> {
    this.nodes.delete(nodeId);
    await redis.del(trafficKey(nodeId));
  }

  async flush(redis: Redis): Promise<void> {
    const pipe = redis.pipeline();
    const taken: Array<[NodeTraffic, number, number, number, number, number]> = [];
    for (const [id, t] of this.nodes) {
      // Entries stay: the routing table's nodes hold them (one small object per node ever seen).
      if (!(t.dActive || t.dTotal || t.dFailed || t.dRx || t.dTx)) continue;
      const key = trafficKey(id);
      if (t.dActive) pipe.hincrby(key, 'active', t.dActive);
      if (t.dTotal) pipe.hincrby(key, 'total', t.dTotal);
      if (t.dFailed) pipe.hincrby(key, 'failed', t.dFailed);
      if (t.dRx) pipe.hincrby(key, 'rx', t.dRx);
      if (t.dTx) pipe.hincrby(key, 'tx', t.dTx);
      taken.push([t, t.dActive, t.dTotal, t.dFailed, t.dRx, t.dTx]);
      t.dActive = t.dTotal = t.dFailed = t.dRx = t.dTx = 0;
    }
    const rejected = [...this.rejected];
    for (const [reason, n] of rejected) pipe.hincrby(REJECTED_KEY, reason, n);
    this.rejected.clear();
    if (taken.length + rejected.length === 0) return;
    try {
      // A pipeline's exec resolves even when single commands fail; those are rare type errors
      // on a key nobody else writes, not worth a second try.
      await pipe.exec();
    } catch (err) {
      // Most likely nothing reached Redis (connection lost): the deltas wait for the next flush.
      for (const [t, a, n, f, rx, tx] of taken) {
        t.dActive += a;
        t.dTotal += n;
        t.dFailed += f;
        t.dRx += rx;
        t.dTx += tx;
      }
      for (const [reason, n] of rejected) this.rejected.set(reason, (this.rejected.get(reason) ?? 0) + n);
      throw err;
    }
  }
}
