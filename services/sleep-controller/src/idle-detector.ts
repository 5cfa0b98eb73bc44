import type { NodeStatus, NodeView, PoolSpec, PoolView, PublishedPort, SleepPolicy } from '@switchyard/contracts';

/** Where a node is, as far as this controller knows. */
export interface TrackedNode {
  readonly tenantId: string;
  readonly poolId: string;
  readonly nodeId: string;
  readonly status: NodeStatus;
  readonly ports: readonly PublishedPort[];
}

export interface IdleCandidate {
  readonly node: TrackedNode;
  readonly policy: SleepPolicy;
  /** How long its transmitted packet count has not grown, in whole seconds. */
  readonly idleSec: number;
}

export interface IdleDetectorOptions {
  /** A node whose last sample is older than this cannot be judged: it is not idle. */
  readonly staleMs: number;
  /**
   * A node being put to sleep that is still running after this long is considered again:
   * the sleep command was lost, and the node must not be left unjudged forever.
   */
  readonly pendingTtlMs: number;
}

interface Activity {
  /** The window's start: when the node (re)started, or when its tx count last grew. */
  activeAt: number;
  /** The tx packet count of the last sample; none yet since the window started. */
  lastTx?: number;
  /** When the last sample was taken (Docker's read time). */
  sampledAt?: number;
}

interface NodeEntry {
  node: TrackedNode;
  activity: Activity;
  /** When this controller began to put it to sleep; cleared by the node's next event. */
  pendingSince?: number;
  /** An idle sleep that failed is not tried again before this. */
  retryAt?: number;
  /** When an event last changed it: a snapshot asked for before then is older than the event. */
  eventAt: number;
}

interface PoolEntry {
  readonly tenantId: string;
  readonly poolId: string;
  readonly spec: PoolSpec;
  readonly eventAt: number;
}

export type PolicyOf = (tenantId: string, poolId: string) => SleepPolicy | undefined;

const poolKey = (tenantId: string, poolId: string) => `${tenantId}/${poolId}`;

/**
 * The pools and nodes this controller watches and how long each node has been idle.
 * A node is idle when its container's transmitted packet count has not grown for the pool's
 * window. Received packets are ignored: a scanner knocking on a port must not keep a node
 * awake. Times are epoch milliseconds; the caller passes `now`, so the rules are testable.
 */
export class IdleDetector {
  private readonly pools = new Map<string, PoolEntry>();
  private readonly nodes = new Map<string, NodeEntry>();
  /** Pools and nodes removed by events, and when: a snapshot older than that must not bring them back. */
  private readonly gone = new Map<string, number>();

  constructor(private readonly opts: IdleDetectorOptions) {}

  node(nodeId: string): TrackedNode | undefined {
    return this.nodes.get(nodeId)?.node;
  }

  pool(tenantId: string, poolId: string): { spec: PoolSpec } | undefined {
    return this.pools.get(poolKey(tenantId, poolId));
  }

  poolKeys(): Set<string> {
    return new Set(this.pools.keys());
  }

  /**
   * Rebuilds from a snapshot (of one tenant when `tenantId` is given) asked for at
   * `requestedAt`. What an event changed after that stays as the event left it. A node keeps
   * its idle window unless it was not running before.
   */
  replace(snapshot: { pools: readonly PoolView[]; nodes: readonly NodeView[] }, requestedAt: number, now: number, tenantId?: string): void {
    const inScope = (t: string) => tenantId === undefined || t === tenantId;
    const fresh = (at: number | undefined) => at !== undefined && at > requestedAt;
    for (const [key, at] of this.gone) if (at <= requestedAt) this.gone.delete(key);

    const snapshotPools = new Set<string>();
    for (const p of snapshot.pools) {
      const key = poolKey(p.tenantId, p.poolId);
      snapshotPools.add(key);
      if (fresh(this.pools.get(key)?.eventAt) || this.gone.has(key)) continue;
      this.pools.set(key, { tenantId: p.tenantId, poolId: p.poolId, spec: p.spec, eventAt: requestedAt });
    }
    for (const [key, p] of this.pools) if (inScope(p.tenantId) && !snapshotPools.has(key) && !fresh(p.eventAt)) this.pools.delete(key);

    const snapshotNodes = new Set<string>();
    for (const v of snapshot.nodes) {
      snapshotNodes.add(v.nodeId);
      const known = this.nodes.get(v.nodeId);
      if (fresh(known?.eventAt) || this.gone.has(v.nodeId)) continue;
      const node: TrackedNode = { tenantId: v.tenantId, poolId: v.poolId, nodeId: v.nodeId, status: v.status, ports: v.ports };
      const stillRunning = known?.node.status === 'running' && v.status === 'running';
      this.nodes.set(v.nodeId, {
        node,
        activity: stillRunning && known ? known.activity : { activeAt: now },
        // Being put to sleep, or waiting to retry, only makes sense while it keeps running.
        ...(stillRunning && known?.pendingSince !== undefined ? { pendingSince: known.pendingSince } : {}),
        ...(stillRunning && known?.retryAt !== undefined ? { retryAt: known.retryAt } : {}),
        eventAt: requestedAt,
      });
    }
    for (const [id, n] of this.nodes) if (inScope(n.node.tenantId) && !snapshotNodes.has(id) && !fresh(n.eventAt)) this.nodes.delete(id);
  }

  poolChanged(p: { tenantId: string; poolId: string; spec: PoolSpec }, now: number): void {
    this.pools.set(poolKey(p.tenantId, p.poolId), { tenantId: p.tenantId, poolId: p.poolId, spec: p.spec, eventAt: now });
  }

  poolDeleted(tenantId: string, poolId: string, now: number): void {
    const key = poolKey(tenantId, poolId);
    this.pools.delete(key);
    this.gone.set(key, now);
    for (const [id, n] of this.nodes) {
      if (n.node.tenantId !== tenantId || n.node.poolId !== poolId) continue;
      this.nodes.delete(id);
      this.gone.set(id, now);
    }
  }

  /** The node runs (again): its window starts now, and samples taken before are not its own. */
  nodeStarted(e: { tenantId: string; poolId: string; nodeId: string; ports: readonly PublishedPort[] }, now: number): void {
    this.gone.delete(e.nodeId);
    this.nodes.set(e.nodeId, {
      node: { tenantId: e.tenantId, poolId: e.poolId, nodeId: e.nodeId, status: 'running', ports: e.ports },
      activity: { activeAt: now },
      eventAt: now,
    });
  }

  /** A stop with reason "sleep" is the sleep this controller (or a person) asked for. */
  nodeStopped(e: { nodeId: string; reason: string }, now: number): void {
    this.setStatus(e.nodeId, e.reason === 'sleep' ? 'sleeping' : 'stopped', now);
  }

  nodeDied(e: { nodeId: string }, now: number): void {
    this.setStatus(e.nodeId, 'error', now);
  }

  nodeRemoved(e: { nodeId: string }, now: number): void {
    this.nodes.delete(e.nodeId);
    this.gone.set(e.nodeId, now);
  }

  /** Something reached the node (a caught connection woke it): its window starts again. */
  touched(nodeId: string, now: number): void {
    const entry = this.nodes.get(nodeId);
    if (entry) entry.activity = { ...entry.activity, activeAt: Math.max(entry.activity.activeAt, now) };
  }

  /** A stats sample of a running node. Only growth of txPackets counts as activity. */
  sample(s: { nodeId: string; txPackets: number; at: string }): void {
    const entry = this.nodes.get(s.nodeId);
    if (entry?.node.status !== 'running') return;
    const sampledAt = Date.parse(s.at);
    const a = entry.activity;
    // Taken before the window started: the previous container's, or older than what we know.
    if (Number.isNaN(sampledAt) || sampledAt < a.activeAt || (a.sampledAt !== undefined && sampledAt < a.sampledAt)) return;
    // A count that went down is a new container's (restarted unseen): its window starts too.
    if (a.lastTx !== undefined && s.txPackets !== a.lastTx) a.activeAt = sampledAt;
    a.lastTx = s.txPackets;
    a.sampledAt = sampledAt;
  }

  /**
   * How long the node has been idle, up to its last sample; undefined when that cannot be
   * told (not running, no sample since its window started, or the last one is stale).
   */
  idleMs(nodeId: string, now: number): number | undefined {
    const entry = this.nodes.get(nodeId);
    if (entry?.node.status !== 'running') return undefined;
    const { activeAt, lastTx, sampledAt } = entry.activity;
    if (lastTx === undefined || sampledAt === undefined || now - sampledAt > this.opts.staleMs) return undefined;
    return Math.max(0, sampledAt - activeAt);
  }

  /**
   * The nodes to put to sleep now: running, idle for at least their pool's window, not being
   * put to sleep already, not waiting to retry, longest idle first, and never so many that
   * fewer than minAwake nodes of the pool would stay running.
   */
  candidates(policyOf: PolicyOf, now: number): IdleCandidate[] {
    const byPool = new Map<string, NodeEntry[]>();
    for (const entry of this.nodes.values()) {
      if (entry.pendingSince !== undefined && now - entry.pendingSince > this.opts.pendingTtlMs) delete entry.pendingSince;
      if (entry.node.status !== 'running' || entry.pendingSince !== undefined) continue;
      const key = poolKey(entry.node.tenantId, entry.node.poolId);
      byPool.set(key, [...(byPool.get(key) ?? []), entry]);
    }
    const chosen: IdleCandidate[] = [];
    for (const [key, awake] of byPool) {
      const pool = this.pools.get(key);
      const policy = pool && policyOf(pool.tenantId, pool.poolId);
      // A host-network container has no interfaces of its own: Docker reports zero packets,
      // so its idleness cannot be told from them.
      if (!pool || !policy?.enabled || pool.spec.network === 'host') continue;
      const room = awake.length - policy.minAwake;
      if (room <= 0) continue;
      const idle = awake
        .filter((e) => e.node.ports.length > 0 && (e.retryAt === undefined || e.retryAt <= now))
        .map((e) => ({ entry: e, idleMs: this.idleMs(e.node.nodeId, now) }))
        .filter((x): x is { entry: NodeEntry; idleMs: number } => x.idleMs !== undefined && x.idleMs >= policy.idleWindowSec * 1000)
        .sort((a, b) => b.idleMs - a.idleMs)
        .slice(0, room);
      for (const { entry, idleMs } of idle) chosen.push({ node: entry.node, policy, idleSec: Math.round(idleMs / 1000) });
    }
    return chosen;
  }

  /** Marks the node as being put to sleep; false when it already is. */
  beginSleep(nodeId: string, now: number): boolean {
    const entry = this.nodes.get(nodeId);
    if (!entry || entry.pendingSince !== undefined) return false;
    entry.pendingSince = now;
    return true;
  }

  /** The attempt ended without a sleep; an idle node is not tried again before `retryAt`. */
  sleepFailed(nodeId: string, retryAt?: number): void {
    const entry = this.nodes.get(nodeId);
    if (!entry) return;
    delete entry.pendingSince;
    if (retryAt !== undefined) entry.retryAt = retryAt;
  }

  private setStatus(nodeId: string, status: NodeStatus, now: number): void {
    const entry = this.nodes.get(nodeId);
    if (!entry) return;
    delete entry.pendingSince;
    delete entry.retryAt;
    entry.node = { ...entry.node, status };
    entry.eventAt = now;
  }
}
