import type { NodeStatus, Payload, PoolView } from '@switchyard/contracts';
import { resolveCheck, type ResolvedCheck } from './check-spec.js';
import type { ProbeRunner } from './probes.js';
import { Scheduler, type Clock } from './scheduler.js';
import { SLEEPY_REASON } from './sleep-settings.js';
import { checkFailed, checkPassed, markDown, restarted, unchecked } from './state.js';
import type { TrackedNode } from './tracked-node.js';

export type HealthChange = Payload<'health.evt.changed'>;

export interface ChecksOptions {
  readonly probe: ProbeRunner;
  /** Target of proxy checks that name none. */
  readonly proxyTarget: string;
  readonly maxInflight: number;
  /** Every change to healthy or unhealthy; must not throw. */
  readonly onTransition: (change: HealthChange) => void;
  /** The node's health record changed; `routine` when only its last check's latency and time did. */
  readonly onChange: (nodeId: string, routine?: boolean) => void;
  readonly clock: Clock;
  /** Wall-clock milliseconds, for timestamps. */
  readonly wall: () => number;
  readonly random: () => number;
  /** The node of this id while the monitor tracks it. */
  readonly node: (nodeId: string) => TrackedNode | undefined;
  readonly pool: (poolId: string) => PoolView | undefined;
  /** Whether the pool's nodes go without active checks (they sleep when idle). */
  readonly sleepy: (poolId: string) => boolean;
}

/** Only while a node is on its way up is "unknown" the honest answer; otherwise it is down. */
const ON_THE_WAY: ReadonlySet<NodeStatus> = new Set(['creating', 'starting']);

/**
 * The verdicts on the tracked nodes: their active checks, run from one scheduler with at most
 * `maxInflight` in flight, and what passive signals and lifecycle changes do to their state.
 * Every change of a node's record, and every transition, goes out through the callbacks.
 */
export class NodeChecks {
  private readonly scheduler: Scheduler;
  private inflight = 0;

  constructor(private readonly opts: ChecksOptions) {
    this.scheduler = new Scheduler((id, dueAt) => this.run(id, dueAt), opts.clock);
  }

  stop(): void {
    this.scheduler.stop();
  }

  /** The node (re)started at `at` (monitor clock): counting starts over, within its grace period. */
  started(n: TrackedNode, at: number): void {
    n.epoch++;
    n.connfails = [];
    // What a passive signal said before the start is over; a sleepy node is unknown again.
    n.passiveOnly = false;
    const check = this.checkOf(n);
    restarted(n.state, at, check && typeof check !== 'string' ? check.graceMs : 0);
    this.opts.onChange(n.nodeId);
  }

  /** A new check, or a new node: the next check is due `firstIn` from now, not at the old time. */
  restart(n: TrackedNode, firstIn: (c: ResolvedCheck) => number): void {
    this.scheduler.cancel(n.nodeId);
    this.refresh(n, firstIn);
  }

  /** Re-resolves a running node's check and schedules it unless it is already due or running. */
  refresh(n: TrackedNode, firstIn: (c: ResolvedCheck) => number): void {
    if (n.lifecycle !== 'running') return;
    if (this.opts.sleepy(n.poolId)) return this.unwatch(n);
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
    if (!n.inflight && !this.scheduler.has(n.nodeId)) this.scheduler.schedule(n.nodeId, this.opts.clock.now() + firstIn(check));
  }

  /** A running node whose checks do not match its pool's sleep policy (any more) is brought in line. */
  followSleepPolicy(n: TrackedNode): void {
    if (n.lifecycle === 'running' && this.opts.sleepy(n.poolId) !== n.passiveOnly) this.refresh(n, (c) => this.opts.random() * c.intervalMs);
  }

  notRunning(n: TrackedNode, reason: string): void {
    n.epoch++;
    n.check = null;
    n.passiveOnly = false;
    n.score = 0;
    n.connfails = [];
    this.scheduler.cancel(n.nodeId);
    if (ON_THE_WAY.has(n.lifecycle)) return this.opts.onChange(n.nodeId);
    this.report(n, markDown(n.state, reason));
  }

  /** A passive signal (container died, Docker health, connection failures): down at once. */
  passiveDown(n: TrackedNode, reason: string): void {
    if (n.check) n.score = n.window.score(this.opts.clock.now(), n.check.probe.timeoutMs);
    this.report(n, markDown(n.state, reason));
  }

  /** The node is no longer tracked. */
  forget(nodeId: string): void {
    this.scheduler.cancel(nodeId);
  }

  /** null while the node's pool is not known yet (a snapshot is on its way). */
  private checkOf(n: TrackedNode): ResolvedCheck | string | null {
    const pool = this.opts.pool(n.poolId);
    const kind = pool?.spec.kind ?? n.kind;
    if (!kind) return null;
    return resolveCheck(kind, pool ? pool.spec.healthCheck : n.createdCheck, n.ports, this.opts.proxyTarget);
  }

  /** Active checks stop; the node keeps its passive signals and says why it is not checked. */
  private unwatch(n: TrackedNode): void {
    this.scheduler.cancel(n.nodeId);
    n.check = null;
    if (n.passiveOnly) return;
    n.passiveOnly = true;
    this.report(n, unchecked(n.state, SLEEPY_REASON));
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
      at: new Date(this.opts.wall()).toISOString(),
    });
  }

  private run(nodeId: string, dueAt: number): void {
    const { clock } = this.opts;
    const n = this.opts.node(nodeId);
    const check = n?.check;
    if (!n || !check || n.lifecycle !== 'running') return;
    if (this.inflight >= this.opts.maxInflight) {
      this.scheduler.schedule(nodeId, clock.now() + 25);
      return;
    }
    const epoch = n.epoch;
    this.inflight++;
    n.inflight = true;
    this.opts.probe(check.probe, (ok, latencyMs, reason) => {
      this.inflight--;
      n.inflight = false;
      if (this.opts.node(nodeId) !== n || n.check === null) return;
      if (n.epoch !== epoch) {
        // A restart while this probe ran could not schedule the node (it was in flight); its
        // first check is due now, not at the next resync.
        if (n.lifecycle === 'running' && !this.scheduler.has(nodeId)) this.scheduler.schedule(nodeId, clock.now());
        return;
      }
      const now = clock.now();
      const before = { score: n.score, reason: n.state.reason };
      n.window.record(ok, latencyMs);
      n.lastCheckAt = this.opts.wall();
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
