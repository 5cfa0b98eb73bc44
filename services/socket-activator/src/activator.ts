import type { Socket } from 'node:net';
import type { CatchView, Payload, ReplyOf } from '@switchyard/contracts';
import { CatchRegistry, type CatchTarget, type LiveCatch } from './catch-registry.js';
import { type ActivatorEdges, message } from './edges.js';
import { type Trigger, Wake } from './wake.js';

export type { ActivatorEdges } from './edges.js';
export type { CatchTarget } from './catch-registry.js';

/**
 * Catches connections to sleeping nodes, holds them, wakes the node (one wake at a time per
 * node), probes its port, steps out of the path (disarm) and forwards what it held. The catches
 * (ports, set, rows) are the registry's; each wake is a Wake; this class routes the requests,
 * connections and events to them.
 */
export class Activator {
  private readonly catches: CatchRegistry;
  /** The wake under way per node id. */
  private readonly wakes = new Map<string, Wake>();
  /** Wakes this activator asked exit-node-manager for, by order id. */
  private readonly orders = new Map<string, Wake>();
  private readonly now: () => number;
  /** Counts what this activator changed itself (arms, wakes, stops), to tell a snapshot older than a change. */
  private changes = 0;
  /** The count at each node's latest change made here. */
  private readonly changedAt = new Map<string, number>();

  constructor(private readonly e: ActivatorEdges) {
    this.now = e.now ?? (() => performance.now());
    this.catches = new CatchRegistry(e);
  }

  // ---- start and rebuild ----

  /** Loads the stored catches: armed ports go back into the set (exactly those), proxy ports are bound again. */
  load(): Promise<void> {
    return this.catches.load();
  }

  /** Taken before a snapshot is asked for, and given to reconcile with it. */
  mark(): number {
    return this.changes;
  }

  /**
   * Brings the catches in line with exit-node-manager's view: removed nodes are forgotten; an
   * armed node that started after it was armed (woke while the activator was away) is disarmed.
   * Proxy mode: every node with ports gets its public ports. A node this activator armed, woke
   * or saw stop after `askedAt` (a mark()) keeps its state: the snapshot is older than that.
   */
  async reconcile(snapshot: ReplyOf<'pool.req.snapshot'>, askedAt = this.mark()): Promise<void> {
    const views = new Map(snapshot.nodes.map((n) => [n.nodeId, n]));
    for (const c of this.catches.all()) {
      const v = views.get(c.nodeId);
      if (!v || v.status === 'removed') {
        await this.forget(c, 'the node is gone');
        continue;
      }
      if (v.ports.length > 0) await this.catches.updatePorts(c, v.ports);
      if ((this.changedAt.get(c.nodeId) ?? 0) > askedAt) continue;
      const waking = this.wakes.has(c.nodeId);
      if (v.status === 'sleeping' && !c.armed && !waking && c.ports.length > 0) await this.catches.rearm(c);
      const wokeSinceArmed = v.status === 'running' && v.startedAt !== null && c.armedAt !== null && Date.parse(v.startedAt) > c.armedAt.getTime();
      if (c.armed && !waking && wokeSinceArmed) {
        this.e.log.info({ nodeId: c.nodeId }, 'the node runs since it was armed: disarmed');
        await this.catches.disarm(c);
      }
    }
    if (this.e.mode !== 'proxy') return;
    for (const v of snapshot.nodes) {
      if (v.status === 'removed' || v.ports.length === 0 || this.catches.get(v.nodeId)) continue;
      await this.catches.adopt({ tenantId: v.tenantId, poolId: v.poolId, nodeId: v.nodeId }, v.ports);
    }
  }

  // ---- requests ----

  async arm(req: Payload<'activator.req.arm'>): Promise<ReplyOf<'activator.req.arm'>> {
    if (this.wakes.has(req.nodeId)) return { ok: false, error: `node ${req.nodeId} is waking; arm it once it is awake` };
    const reply = await this.catches.arm(req);
    this.changed(req.nodeId);
    return reply;
  }

  state(req: Payload<'activator.req.state'>): ReplyOf<'activator.req.state'> {
    const ids = req.nodeIds ? new Set(req.nodeIds) : undefined;
    const nodes: CatchView[] = this.catches
      .all()
      .filter((c) => (!req.tenantId || c.tenantId === req.tenantId) && (!ids || ids.has(c.nodeId)))
      .map((c) => ({
        tenantId: c.tenantId,
        poolId: c.poolId,
        nodeId: c.nodeId,
        state: this.wakes.has(c.nodeId) ? 'waking' : c.armed ? 'armed' : 'awake',
        ports: c.ports.map((p) => ({ name: p.name, hostPort: p.hostPort, publicPort: p.publicPort })),
        probeIntervalMs: c.probeIntervalMs,
        probeTimeoutMs: c.probeTimeoutMs,
      }));
    return { mode: this.e.mode, listenPort: this.e.listenPort, redirected: this.e.redirects.ports(), nodes };
  }

  // ---- connections ----

  /** A connection for a node port: held while the node sleeps or wakes, forwarded when it is awake. */
  accept(socket: Socket, target: CatchTarget): void {
    const found = this.catches.find(target);
    if (!found) {
      this.e.metrics.caught(false);
      this.e.release(socket);
      if ('hostPort' in target) {
        // Redirected to nothing: never again.
        this.e.log.warn({ hostPort: target.hostPort }, 'a connection to a port no node is known for: closed, and the port is no longer redirected');
        this.e.redirects
          .remove([target.hostPort])
          .catch((err: unknown) => this.e.log.warn({ hostPort: target.hostPort, err: message(err) }, 'could not remove a port from the set'));
      }
      return;
    }
    const { c, port } = found;
    // Before anything is woken: a denied connection must not cost the tenant a wake.
    const verdict = this.e.admit?.(c, socket.remoteAddress, 'hostPort' in target ? target.hostPort : (port.publicPort ?? port.hostPort)) ?? 'allowed';
    if (verdict !== 'allowed') {
      this.e.metrics.refused(verdict);
      this.e.release(socket);
      return;
    }
    const wake = this.wakes.get(c.nodeId);
    if (wake) {
      this.e.metrics.caught(true);
      wake.take(socket, port.hostPort);
      return;
    }
    if (!c.armed) {
      this.e.metrics.caught(false);
      this.e.forward(socket, port.hostPort, { onFirstByte: () => {} });
      return;
    }
    this.e.metrics.caught(true);
    this.startWake(c, 'connection').take(socket, port.hostPort);
  }

  // ---- events ----

  async orderFulfilled(p: Payload<'order.evt.fulfilled'>): Promise<void> {
    this.orders.get(p.orderId)?.markStarted();
  }

  async orderFailed(p: Payload<'order.evt.failed'>): Promise<void> {
    this.orders.get(p.orderId)?.fail(`the wake order failed: ${p.reason}`);
  }

  async nodeStarted(p: Payload<'node.evt.started'>): Promise<void> {
    const c = this.catches.get(p.nodeId);
    if (!c) {
      if (this.e.mode === 'proxy' && p.ports.length > 0) await this.catches.adopt(p, p.ports);
      return;
    }
    if (p.ports.length > 0) await this.catches.updatePorts(c, p.ports);
    // A start older than the arm is the one before this sleep, not a wake.
    const startedAfterArm = c.armedAt === null || Date.parse(p.at) >= c.armedAt.getTime();
    if (!startedAfterArm) return;
    const w = this.wakes.get(c.nodeId) ?? (c.armed ? this.startWake(c, 'manual') : undefined);
    if (!w) return;
    w.awaitsHealthy = p.healthcheck === true;
    w.markStarted();
  }

  async nodeHealth(p: Payload<'node.evt.health'>): Promise<void> {
    const c = this.catches.get(p.nodeId);
    if (!c) return;
    c.healthyAt = p.status === 'healthy' ? Date.parse(p.at) : 0;
    const w = this.wakes.get(c.nodeId);
    if (c.healthyAt > 0 && w?.awaitsHealthy) w.probeNow();
  }

  async nodeStopped(p: Payload<'node.evt.stopped'>): Promise<void> {
    const c = this.catches.get(p.nodeId);
    if (c) this.changed(c.nodeId);
    if (c && !this.wakes.has(c.nodeId)) {
      // Put to sleep while not armed (a wake carried out before the sleep disarmed it): armed
      // again, so a sleeping node is never uncatchable. Stopped by an operator: not woken by
      // the next connection.
      if (p.reason === 'sleep' && !c.armed && c.ports.length > 0) await this.catches.rearm(c);
      else if (p.reason !== 'sleep' && c.armed) await this.catches.disarm(c);
    }
    // A start the activator did not ask for is over: nothing to wait for. A wake it asked for
    // goes on (exit-node-manager carries out the wake after the stop).
    const w = c && this.wakes.get(c.nodeId);
    if (w?.trigger === 'manual') w.fail(`the node stopped (${p.reason}) before its port accepted`);
  }

  async nodeRemoved(p: Payload<'node.evt.removed'>): Promise<void> {
    const c = this.catches.get(p.nodeId);
    if (c) await this.forget(c, `the node was removed (${p.reason})`);
  }

  async poolDeleted(p: Payload<'pool.evt.deleted'>): Promise<void> {
    for (const c of this.catches.all()) if (c.tenantId === p.tenantId && c.poolId === p.poolId) await this.forget(c, 'the pool was deleted');
  }

  async policyChanged(p: Payload<'sleep.evt.policy'>): Promise<void> {
    for (const c of this.catches.all()) {
      if (c.tenantId !== p.tenantId || c.poolId !== p.poolId) continue;
      c.probeIntervalMs = p.policy.probeIntervalMs;
      c.probeTimeoutMs = p.policy.probeTimeoutMs;
      await this.catches.save(c);
    }
  }

  /** Shutdown: held connections are let go cleanly (the set and rows stay, so the next process catches again). */
  stop(): void {
    for (const w of [...this.wakes.values()]) w.fail('the activator is shutting down');
  }

  private startWake(c: LiveCatch, trigger: Trigger): Wake {
    const w: Wake = new Wake(c, trigger, this.e, this.now, {
      // Forgotten meanwhile (removed, its pool deleted): nothing of it is left to disarm.
      disarm: async () => {
        if (this.catches.get(c.nodeId) === c) await this.catches.disarm(c);
      },
      rearm: async () => {
        if (this.catches.get(c.nodeId) === c && !c.armed && c.ports.length > 0) await this.catches.rearm(c);
      },
      settled: () => {
        this.changed(c.nodeId);
        if (this.wakes.get(c.nodeId) === w) this.wakes.delete(c.nodeId);
        if (w.orderId) this.orders.delete(w.orderId);
      },
    });
    this.wakes.set(c.nodeId, w);
    this.changed(c.nodeId);
    if (w.orderId) this.orders.set(w.orderId, w);
    w.start();
    return w;
  }

  private changed(nodeId: string): void {
    if (this.catches.get(nodeId)) this.changedAt.set(nodeId, ++this.changes);
  }

  private async forget(c: LiveCatch, reason: string): Promise<void> {
    this.wakes.get(c.nodeId)?.fail(reason);
    this.changedAt.delete(c.nodeId);
    await this.catches.forget(c, reason);
  }
}
