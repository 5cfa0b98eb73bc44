import type { NodeHealth, NodeStatus, NodeView, Payload, PoolView, PublishedPort } from '@switchyard/contracts';
import { NodeChecks, type HealthChange } from './checks.js';
import type { ProbeRunner } from './probes.js';
import { systemClock, type Clock } from './scheduler.js';
import { SleepSettings, type SleepPolicyReplies } from './sleep-settings.js';
import { healthRecord, newTrackedNode, type TrackedNode } from './tracked-node.js';

export type { HealthChange } from './checks.js';

export interface MonitorOptions {
  readonly probe: ProbeRunner;
  /** Target of proxy checks that name none. */
  readonly proxyTarget: string;
  /** `limit` connection failures within `windowMs` mark a node down. */
  readonly connfail: { readonly limit: number; readonly windowMs: number };
  readonly maxInflight: number;
  /** Every change to healthy or unhealthy; must not throw. */
  readonly onTransition: (change: HealthChange) => void;
  /**
   * The node's health record changed; `routine` when only the latency and time of the last
   * check did (a check that changed nothing else). Must not throw.
   */
  readonly onChange: (nodeId: string, routine?: boolean) => void;
  /** The node is gone; its record should be too. */
  readonly onForget: (nodeId: string) => void;
  /** Asks for a rebuild from a snapshot: an event named a node or pool this monitor never saw. */
  readonly onUnknown: () => void;
  /**
   * A snapshot does not override what an event said this long before the snapshot was asked
   * for: the manager publishes an event before it writes the row a snapshot reads.
   */
  readonly eventTrustMs?: number;
  readonly clock?: Clock;
  /** Wall-clock milliseconds, for timestamps. */
  readonly wallClock?: () => number;
  readonly random?: () => number;
}

const DEFAULT_EVENT_TRUST_MS = 5000;

/**
 * The set of nodes to check, their check state and scores. Fed by a snapshot (start,
 * reconnect, periodically) and by node and pool events in between; the checks and verdicts
 * themselves are NodeChecks', which reports transitions and changes through the callbacks.
 */
export class HealthMonitor {
  private readonly nodes = new Map<string, TrackedNode>();
  private pools = new Map<string, PoolView>();
  private readonly sleep: SleepSettings;
  private readonly checks: NodeChecks;
  private readonly clock: Clock;
  private readonly wall: () => number;
  private readonly random: () => number;

  constructor(private readonly opts: MonitorOptions) {
    this.clock = opts.clock ?? systemClock;
    this.wall = opts.wallClock ?? Date.now;
    this.random = opts.random ?? Math.random;
    this.sleep = new SleepSettings(opts.eventTrustMs ?? DEFAULT_EVENT_TRUST_MS);
    this.checks = new NodeChecks({
      ...opts,
      clock: this.clock,
      wall: this.wall,
      random: this.random,
      node: (id) => this.nodes.get(id),
      pool: (id) => this.pools.get(id),
      sleepy: (poolId) => this.sleep.sleepy(poolId, this.pools.get(poolId)?.spec),
    });
  }

  stop(): void {
    this.checks.stop();
  }

  /**
   * Rebuilds from a snapshot requested at `requestedAt` (monitor clock). A node an event
   * described after that moment, or shortly before it (`eventTrustMs`), keeps what the event
   * said: the snapshot may predate it.
   */
  replace(snapshot: { pools: readonly PoolView[]; nodes: readonly NodeView[] }, requestedAt: number, sleepPolicies: SleepPolicyReplies = new Map()): void {
    this.pools = new Map(snapshot.pools.map((p) => [p.poolId, p]));
    this.sleep.repliesRead(sleepPolicies, requestedAt);
    const seen = new Set<string>();
    for (const v of snapshot.nodes) {
      seen.add(v.nodeId);
      const known = this.nodes.get(v.nodeId);
      if (known && known.lastEventAt > requestedAt - (this.opts.eventTrustMs ?? DEFAULT_EVENT_TRUST_MS)) continue;
      if (v.status === 'removed') {
        this.drop(v.nodeId);
        continue;
      }
      const n = known ?? this.track(v.tenantId, v.poolId, v.nodeId);
      n.kind = v.kind;
      n.ports = v.ports;
      const wasRunning = n.lifecycle === 'running';
      n.lifecycle = v.status;
      if (v.status === 'running') {
        if (!wasRunning) {
          const sinceStart = v.startedAt ? Math.max(0, this.wall() - Date.parse(v.startedAt)) : 0;
          this.checks.started(n, this.clock.now() - sinceStart);
        }
        // A thousand nodes found at once are spread over their interval, not checked in a burst.
        this.checks.refresh(n, (c) => this.random() * c.intervalMs);
      } else {
        this.checks.notRunning(n, `node is ${v.status}`);
      }
    }
    const trusted = requestedAt - (this.opts.eventTrustMs ?? DEFAULT_EVENT_TRUST_MS);
    for (const [id, n] of this.nodes) if (!seen.has(id) && n.lastEventAt <= trusted) this.drop(id);
    // Nodes the loop left to their events still follow a policy the replies changed.
    for (const n of this.nodes.values()) this.checks.followSleepPolicy(n);
  }

  /** sleep.evt.policy: the pool's nodes stop (or resume) their active checks at once. */
  sleepPolicyChanged(p: Payload<'sleep.evt.policy'>): void {
    this.sleep.policyChanged(p, this.clock.now());
    for (const n of this.nodes.values()) if (n.poolId === p.poolId) this.checks.followSleepPolicy(n);
  }

  poolChanged(p: Payload<'pool.evt.changed'>): void {
    this.pools.set(p.poolId, { tenantId: p.tenantId, poolId: p.poolId, name: p.name, spec: p.spec });
    for (const n of this.nodes.values()) {
      if (n.poolId !== p.poolId) continue;
      n.kind = p.spec.kind;
      // A new interval or target applies from the next check on, which comes now.
      this.checks.restart(n, (c) => this.random() * c.intervalMs);
    }
  }

  poolDeleted(p: Payload<'pool.evt.deleted'>): void {
    this.pools.delete(p.poolId);
    this.sleep.forget(p.poolId);
    for (const n of [...this.nodes.values()]) if (n.poolId === p.poolId) this.drop(n.nodeId);
  }

  nodeCreated(p: Payload<'node.evt.created'>): void {
    const n = this.event(p);
    n.kind = p.kind;
    n.createdCheck = p.healthCheck;
    n.lifecycle = 'creating';
  }

  nodeStarted(p: Payload<'node.evt.started'>): void {
    const n = this.event(p);
    n.ports = p.ports;
    n.lifecycle = 'running';
    this.checks.started(n, this.clock.now());
    this.checks.restart(n, () => 0);
  }

  nodeStopped(p: Payload<'node.evt.stopped'>): void {
    const n = this.event(p);
    n.lifecycle = 'stopped';
    this.checks.notRunning(n, `stopped: ${p.reason}`);
  }

  nodeDied(p: Payload<'node.evt.died'>): void {
    const n = this.event(p);
    n.lifecycle = 'error';
    n.window.passiveError(this.clock.now());
    this.checks.notRunning(n, `container died (exit code ${p.exitCode}${p.oomKilled ? ', out of memory' : ''})`);
  }

  nodeDraining(p: Payload<'node.evt.draining'>): void {
    const n = this.event(p);
    n.lifecycle = 'stopping';
    this.checks.notRunning(n, `draining: ${p.reason}`);
  }

  nodeRemoved(p: Payload<'node.evt.removed'>): void {
    this.event(p);
    this.drop(p.nodeId);
  }

  /** Docker's own HEALTHCHECK: unhealthy is a passive signal; healthy is left to our checks. */
  nodeHealthReported(p: Payload<'node.evt.health'>): void {
    const n = this.nodes.get(p.nodeId);
    if (!n) return this.opts.onUnknown();
    if (p.status !== 'unhealthy') return;
    n.window.passiveError(this.clock.now());
    this.checks.passiveDown(n, 'the container HEALTHCHECK reports unhealthy');
  }

  /**
   * The load balancer could not connect. `limit` of these within the window mark the node
   * down; within a start's grace period they are expected and ignored.
   */
  connectionFailed(p: Payload<'lb.evt.connfail'>): void {
    const n = this.nodes.get(p.nodeId);
    if (!n || n.lifecycle !== 'running') return;
    const now = this.clock.now();
    if (now < n.state.graceUntil) return;
    n.window.passiveError(now);
    const { limit, windowMs } = this.opts.connfail;
    n.connfails = n.connfails.filter((t) => now - t < windowMs);
    n.connfails.push(now);
    if (n.connfails.length < limit) return this.opts.onChange(n.nodeId);
    const count = n.connfails.length;
    n.connfails = [];
    this.checks.passiveDown(n, `${count} connection failures reported by the load balancer (last: ${p.error})`);
  }

  /** Health of the known nodes, of one tenant and/or some ids; unknown ids are left out. */
  status(filter: { tenantId?: string | undefined; nodeIds?: readonly string[] | undefined } = {}): NodeHealth[] {
    const picked = filter.nodeIds ? [...new Set(filter.nodeIds)].flatMap((id) => this.nodes.get(id) ?? []) : [...this.nodes.values()];
    return picked.filter((n) => !filter.tenantId || n.tenantId === filter.tenantId).map(healthRecord);
  }

  record(nodeId: string): NodeHealth | undefined {
    const n = this.nodes.get(nodeId);
    return n && healthRecord(n);
  }

  /** What a speed test needs to know about a node. */
  node(nodeId: string): { tenantId: string; lifecycle: NodeStatus; ports: readonly PublishedPort[] } | undefined {
    const n = this.nodes.get(nodeId);
    return n && { tenantId: n.tenantId, lifecycle: n.lifecycle, ports: n.ports };
  }

  private track(tenantId: string, poolId: string, nodeId: string): TrackedNode {
    const n = newTrackedNode(tenantId, poolId, nodeId, this.pools.get(poolId)?.spec.kind);
    this.nodes.set(nodeId, n);
    this.opts.onChange(nodeId);
    return n;
  }

  /** The node an event is about, tracked from now on; an unknown pool asks for a snapshot. */
  private event(p: { tenantId: string; poolId: string; nodeId: string }): TrackedNode {
    const n = this.nodes.get(p.nodeId) ?? this.track(p.tenantId, p.poolId, p.nodeId);
    n.lastEventAt = this.clock.now();
    if (!this.pools.has(p.poolId)) this.opts.onUnknown();
    return n;
  }

  private drop(nodeId: string): void {
    if (!this.nodes.delete(nodeId)) return;
    this.checks.forget(nodeId);
    this.opts.onForget(nodeId);
  }
}
