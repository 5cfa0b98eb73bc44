import type {
  HealthCheckSpec,
  NodeHealth,
  NodeStatus,
  NodeView,
  Payload,
  PoolKind,
  PoolView,
  PublishedPort,
} from '@switchyard/contracts';
import { resolveCheck, type ResolvedCheck } from './check-spec.js';
import type { ProbeRunner } from './probes.js';
import { Scheduler, systemClock, type Clock } from './scheduler.js';
import { ScoreWindow } from './score.js';
import { checkFailed, checkPassed, markDown, newCheckState, restarted, unchecked, type CheckState } from './state.js';

export type HealthChange = Payload<'health.evt.changed'>;

/** What the sleep-controller answered to `sleep.req.policy` for each tenant that answered. */
export type SleepPolicyReplies = ReadonlyMap<string, readonly { readonly poolId: string; readonly policy: { readonly enabled: boolean } }[]>;

export const SLEEPY_REASON = 'not actively checked: the pool sleeps when idle (checks would keep it awake)';

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

interface TrackedNode {
  readonly tenantId: string;
  readonly poolId: string;
  readonly nodeId: string;
  kind: PoolKind | undefined;
  /** The check node.evt.created carried, used while the pool itself is not known. */
  createdCheck: HealthCheckSpec | undefined;
  lifecycle: NodeStatus;
  ports: readonly PublishedPort[];
  check: ResolvedCheck | null;
  readonly state: CheckState;
  readonly window: ScoreWindow;
  score: number;
  latencyMs: number | null;
  lastCheckAt: number | null;
  /** When an event last told this monitor about the node (monitor clock). */
  lastEventAt: number;
  /** Bumped on every start and stop, so a check begun before it is ignored. */
  epoch: number;
  inflight: boolean;
  connfails: number[];
  /** Running without active checks because its pool sleeps when idle; passive signals only. */
  passiveOnly: boolean;
}

/** A pool's sleep policy as last told by the sleep-controller (event or reply). */
interface SleepSetting {
  readonly tenantId: string;
  readonly enabled: boolean;
  /** When an event said it (monitor clock); -Infinity when a reply did. */
  readonly eventAt: number;
}

const DEFAULT_EVENT_TRUST_MS = 5000;

/** Only while a node is on its way up is "unknown" the honest answer; otherwise it is down. */
const ON_THE_WAY: ReadonlySet<NodeStatus> = new Set(['creating', 'starting']);

/**
 * The set of nodes to check, their check state and scores. Fed by a snapshot (start,
 * reconnect, periodically) and by node and pool events in between; runs the active checks
 * from one scheduler; reports transitions and changes through its callbacks.
 */
export class HealthMonitor {
  private readonly nodes = new Map<string, TrackedNode>();
  private pools = new Map<string, PoolView>();
  private readonly sleep = new Map<string, SleepSetting>();
  private readonly scheduler: Scheduler;
  private readonly clock: Clock;
  private readonly wall: () => number;
  private readonly random: () => number;
  private inflight = 0;

  constructor(private readonly opts: MonitorOptions) {
    this.clock = opts.clock ?? systemClock;
    this.wall = opts.wallClock ?? Date.now;
    this.random = opts.random ?? Math.random;
    this.scheduler = new Scheduler((id, dueAt) => this.runCheck(id, dueAt), this.clock);
  }

  stop(): void {
    this.scheduler.stop();
  }

  /**
   * Rebuilds from a snapshot requested at `requestedAt` (monitor clock). A node an event
   * described after that moment, or shortly before it (`eventTrustMs`), keeps what the event
   * said: the snapshot may predate it.
   */
  replace(
    snapshot: { pools: readonly PoolView[]; nodes: readonly NodeView[] },
    requestedAt: number,
    sleepPolicies: SleepPolicyReplies = new Map(),
  ): void {
    this.pools = new Map(snapshot.pools.map((p) => [p.poolId, p]));
    this.sleepPoliciesRead(sleepPolicies, requestedAt);
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
          this.started(n, this.clock.now() - sinceStart);
        }
        // A thousand nodes found at once are spread over their interval, not checked in a burst.
        this.refreshCheck(n, (c) => this.random() * c.intervalMs);
      } else {
        this.notRunning(n, `node is ${v.status}`);
      }
    }
    const trusted = requestedAt - (this.opts.eventTrustMs ?? DEFAULT_EVENT_TRUST_MS);
    for (const [id, n] of this.nodes) if (!seen.has(id) && n.lastEventAt <= trusted) this.drop(id);
    // Nodes the loop left to their events still follow a policy the replies changed.
    for (const n of this.nodes.values()) this.followSleepPolicy(n);
  }

  /** sleep.evt.policy: the pool's nodes stop (or resume) their active checks at once. */
  sleepPolicyChanged(p: Payload<'sleep.evt.policy'>): void {
    this.sleep.set(p.poolId, { tenantId: p.tenantId, enabled: p.policy.enabled, eventAt: this.clock.now() });
    for (const n of this.nodes.values()) if (n.poolId === p.poolId) this.followSleepPolicy(n);
  }

  poolChanged(p: Payload<'pool.evt.changed'>): void {
    this.pools.set(p.poolId, { tenantId: p.tenantId, poolId: p.poolId, name: p.name, spec: p.spec });
    for (const n of this.nodes.values()) {
      if (n.poolId !== p.poolId) continue;
      n.kind = p.spec.kind;
      // A new interval or target applies from the next check on, which comes now.
      this.scheduler.cancel(n.nodeId);
      this.refreshCheck(n, (c) => this.random() * c.intervalMs);
    }
  }

  poolDeleted(p: Payload<'pool.evt.deleted'>): void {
    this.pools.delete(p.poolId);
    this.sleep.delete(p.poolId);
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
    this.started(n, this.clock.now());
    this.scheduler.cancel(n.nodeId);
    this.refreshCheck(n, () => 0);
  }

  nodeStopped(p: Payload<'node.evt.stopped'>): void {
    const n = this.event(p);
    n.lifecycle = 'stopped';
    this.notRunning(n, `stopped: ${p.reason}`);
  }

  nodeDied(p: Payload<'node.evt.died'>): void {
    const n = this.event(p);
    n.lifecycle = 'error';
    n.window.passiveError(this.clock.now());
    this.notRunning(n, `container died (exit code ${p.exitCode}${p.oomKilled ? ', out of memory' : ''})`);
  }

  nodeDraining(p: Payload<'node.evt.draining'>): void {
    const n = this.event(p);
    n.lifecycle = 'stopping';
    this.notRunning(n, `draining: ${p.reason}`);
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
    this.passiveDown(n, 'the container HEALTHCHECK reports unhealthy');
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
    this.passiveDown(n, `${count} connection failures reported by the load balancer (last: ${p.error})`);
  }

  /** Health of the known nodes, of one tenant and/or some ids; unknown ids are left out. */
  status(filter: { tenantId?: string | undefined; nodeIds?: readonly string[] | undefined } = {}): NodeHealth[] {
    const picked = filter.nodeIds
      ? [...new Set(filter.nodeIds)].flatMap((id) => this.nodes.get(id) ?? [])
      : [...this.nodes.values()];
    return picked.filter((n) => !filter.tenantId || n.tenantId === filter.tenantId).map((n) => this.view(n));
  }

  record(nodeId: string): NodeHealth | undefined {
    const n = this.nodes.get(nodeId);
    return n && this.view(n);
  }

  /** What a speed test needs to know about a node. */
  node(nodeId: string): { tenantId: string; lifecycle: NodeStatus; ports: readonly PublishedPort[] } | undefined {
    const n = this.nodes.get(nodeId);
    return n && { tenantId: n.tenantId, lifecycle: n.lifecycle, ports: n.ports };
  }

  private view(n: TrackedNode): NodeHealth {
    return {
      tenantId: n.tenantId,
      poolId: n.poolId,
      nodeId: n.nodeId,
      status: n.state.status,
      score: n.score,
      latencyMs: n.latencyMs,
      lastCheckAt: n.lastCheckAt === null ? null : new Date(n.lastCheckAt).toISOString(),
      reason: n.state.reason,
    };
  }

  private track(tenantId: string, poolId: string, nodeId: string): TrackedNode {
    const n: TrackedNode = {
      tenantId,
      poolId,
      nodeId,
      kind: this.pools.get(poolId)?.spec.kind,
      createdCheck: undefined,
      lifecycle: 'creating',
      ports: [],
      check: null,
      state: newCheckState(),
      window: new ScoreWindow(),
      score: 0,
      latencyMs: null,
      lastCheckAt: null,
      lastEventAt: -Infinity,
      epoch: 0,
      inflight: false,
      connfails: [],
      passiveOnly: false,
    };
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

  private started(n: TrackedNode, at: number): void {
    n.epoch++;
    n.connfails = [];
    // What a passive signal said before the start is over; a sleepy node is unknown again.
    n.passiveOnly = false;
    const check = this.checkOf(n);
    restarted(n.state, at, check && typeof check !== 'string' ? check.graceMs : 0);
    this.opts.onChange(n.nodeId);
  }

  /** null while the node's pool is not known yet (a snapshot is on its way). */
  private checkOf(n: TrackedNode): ResolvedCheck | string | null {
    const pool = this.pools.get(n.poolId);
    const kind = pool?.spec.kind ?? n.kind;
    if (!kind) return null;
    return resolveCheck(kind, pool ? pool.spec.healthCheck : n.createdCheck, n.ports, this.opts.proxyTarget);
  }

  /**
   * Whether the pool's nodes go without active checks: the sleep-controller's word (an event,
   * or its reply at the last resync), else the pool spec's. A check makes the container send
   * packets, and a node sending packets never counts as idle.
   */
  private sleepy(poolId: string): boolean {
    return this.sleep.get(poolId)?.enabled ?? this.pools.get(poolId)?.spec.sleep?.enabled ?? false;
  }

  /**
   * Takes in the replies to sleep.req.policy: a tenant that answered has exactly the policies
   * it listed (a pool it did not list falls back to its spec), except those an event told
   * about after (or shortly before) the snapshot was asked for. A tenant that did not answer
   * keeps what events said.
   */
  private sleepPoliciesRead(replies: SleepPolicyReplies, requestedAt: number): void {
    const trusted = requestedAt - (this.opts.eventTrustMs ?? DEFAULT_EVENT_TRUST_MS);
    for (const [poolId, s] of this.sleep) if (replies.has(s.tenantId) && s.eventAt <= trusted) this.sleep.delete(poolId);
    for (const [tenantId, policies] of replies) {
      for (const p of policies) {
        if (!this.sleep.has(p.poolId)) this.sleep.set(p.poolId, { tenantId, enabled: p.policy.enabled, eventAt: -Infinity });
      }
    }
  }

  /** A running node whose checks do not match its pool's sleep policy (any more) is brought in line. */
  private followSleepPolicy(n: TrackedNode): void {
    if (n.lifecycle === 'running' && this.sleepy(n.poolId) !== n.passiveOnly) this.refreshCheck(n, (c) => this.random() * c.intervalMs);
  }

  /** Re-resolves a running node's check and schedules it unless it is already due or running. */
  private refreshCheck(n: TrackedNode, firstIn: (c: ResolvedCheck) => number): void {
    if (n.lifecycle !== 'running') return;
    if (this.sleepy(n.poolId)) return this.unwatch(n);
    n.passiveOnly = false;
    const check = this.checkOf(n);
    if (check === null) {
      n.check = null;
      return;
    }
    if (typeof check === 'string') {
      n.check = null;
      this.scheduler.cancel(n.nodeId);
      this.passiveDown(n, `cannot be checked: ${check}`);
      return;
    }
    n.check = check;
    if (!n.inflight && !this.scheduler.has(n.nodeId)) this.scheduler.schedule(n.nodeId, this.clock.now() + firstIn(check));
  }

  /** Active checks stop; the node keeps its passive signals and says why it is not checked. */
  private unwatch(n: TrackedNode): void {
    this.scheduler.cancel(n.nodeId);
    n.check = null;
    if (n.passiveOnly) return;
    n.passiveOnly = true;
    this.report(n, unchecked(n.state, SLEEPY_REASON));
  }

  private notRunning(n: TrackedNode, reason: string): void {
    n.epoch++;
    n.check = null;
    n.passiveOnly = false;
    n.score = 0;
    n.connfails = [];
    this.scheduler.cancel(n.nodeId);
    if (ON_THE_WAY.has(n.lifecycle)) return this.opts.onChange(n.nodeId);
    this.report(n, markDown(n.state, reason));
  }

  private passiveDown(n: TrackedNode, reason: string): void {
    if (n.check) n.score = n.window.score(this.clock.now(), n.check.probe.timeoutMs);
    this.report(n, markDown(n.state, reason));
  }

  private drop(nodeId: string): void {
    if (!this.nodes.delete(nodeId)) return;
    this.scheduler.cancel(nodeId);
    this.opts.onForget(nodeId);
  }

  private report(n: TrackedNode, changed: string | null, routine = false): void {
    this.opts.onChange(n.nodeId, routine);
    if (changed !== 'healthy' && changed !== 'unhealthy') return;
    this.opts.onTransition({
      tenantId: n.tenantId,
      poolId: n.poolId,
      nodeId: n.nodeId,
      status: changed,
      score: n.score,
      reason: n.state.reason,
      at: new Date(this.wall()).toISOString(),
    });
  }

  private runCheck(nodeId: string, dueAt: number): void {
    const n = this.nodes.get(nodeId);
    const check = n?.check;
    if (!n || !check || n.lifecycle !== 'running') return;
    if (this.inflight >= this.opts.maxInflight) {
      this.scheduler.schedule(nodeId, this.clock.now() + 25);
      return;
    }
    const epoch = n.epoch;
    this.inflight++;
    n.inflight = true;
    this.opts.probe(check.probe, (ok, latencyMs, reason) => {
      this.inflight--;
      n.inflight = false;
      if (this.nodes.get(nodeId) !== n || n.check === null) return;
      if (n.epoch !== epoch) {
        // A restart while this probe ran could not schedule the node (it was in flight); its
        // first check is due now, not at the next resync.
        if (n.lifecycle === 'running' && !this.scheduler.has(nodeId)) this.scheduler.schedule(nodeId, this.clock.now());
        return;
      }
      const now = this.clock.now();
      const before = { score: n.score, reason: n.state.reason };
      n.window.record(ok, latencyMs);
      n.lastCheckAt = this.wall();
      if (ok) n.latencyMs = Math.round(latencyMs * 10) / 10;
      const changed = ok ? checkPassed(n.state, check) : checkFailed(n.state, check, reason, now);
      n.score = n.window.score(now, check.probe.timeoutMs);
      this.report(n, changed, changed === null && n.score === before.score && n.state.reason === before.reason);
      // An interval after this one was due (a late timer does not stretch the period), and
      // never while this one still runs.
      this.scheduler.schedule(nodeId, Math.max(dueAt + n.check.intervalMs, now));
    });
  }
}
