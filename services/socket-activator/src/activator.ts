import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import type { ActivatorMode, CatchView, Payload, PublishedPort, ReplyOf } from '@switchyard/contracts';
import type { CatchPort, CatchStore, NodeCatch, Redirects } from './catches.js';
import type { ActivatorMetrics } from './metrics.js';

type Log = { [K in 'debug' | 'info' | 'warn']: (obj: object, msg: string) => void };
type Trigger = 'connection' | 'manual';

/** The edges of the core: NATS, the probe, sockets, the set and the rows. Fakes in tests. */
export interface ActivatorEdges {
  mode: ActivatorMode;
  listenPort: number;
  /** The address nodes publish their ports on; the only one caught, probed and dialled. */
  nodeHost: string;
  store: CatchStore;
  redirects: Redirects;
  /** Publishes node.cmd.wake for the node with this order id. */
  requestWake(c: NodeCatch, orderId: string): Promise<void>;
  /** One probe attempt of the node's port. */
  probe(hostPort: number): Promise<boolean>;
  /**
   * Connects a (paused) client to the node's port and pipes both ways. `redialForMs` > 0: the
   * node may still turn the connection away that long (it just woke); dial again meanwhile.
   */
  forward(socket: Socket, hostPort: number, onFirstByte: () => void, redial?: { forMs: number; everyMs: number }): void;
  /** Ends a client cleanly (FIN, never RST). */
  release(socket: Socket): void;
  woke(e: Payload<'activator.evt.woke'>): Promise<void>;
  failed(e: Payload<'activator.evt.failed'>): Promise<void>;
  /** Proxy mode: binds the activator's public port for a node port (its stored one, or any); resolves with it. */
  listen?(c: NodeCatch, port: CatchPort): Promise<number>;
  /** Proxy mode: closes the node's public ports. */
  unlisten?(nodeId: string): void;
  metrics: ActivatorMetrics;
  log: Log;
  now?: () => number;
  /** A woke event waits this long for the node's first byte before it goes without firstByteMs. */
  firstByteWaitMs?: number;
  /** The ports leave the set once the node answered a held connection, or after this long. */
  disarmWaitMs?: number;
}

/** A wake under way: the held connections and the ports that must accept before they are forwarded. */
interface Wake {
  readonly trigger: Trigger;
  readonly orderId: string | undefined;
  readonly startedAt: number;
  /** Held sockets and the host port each is for. */
  readonly held: Map<Socket, number>;
  heldTotal: number;
  readonly probePorts: Set<number>;
  readonly readyPorts: Set<number>;
  /** probing → ready (disarming; new catches still join) → done. */
  phase: 'probing' | 'ready' | 'done';
  deadline?: NodeJS.Timeout;
  probeTimer?: NodeJS.Timeout;
  /** An attempt is in flight; it schedules the next tick when it ends. */
  probing: boolean;
  /** Once ready: forwards a connection of this wake to the node (dialled again if turned away). */
  handOver?: (socket: Socket, hostPort: number) => void;
  /**
   * exit-node-manager started the node for this wake (node.evt.started after the arm, or the
   * wake order fulfilled). Probing waits for it: before, the node may still be running, about
   * to be put to sleep (a connection forwarded to it would be cut by the stop); and a probe
   * made while Docker starts the container makes docker-proxy's dial stall on ARP for a second.
   */
  started: boolean;
  /**
   * The started container has a HEALTHCHECK of its own: it is ready once Docker reports it
   * healthy, not when its port first accepts (PostgreSQL accepts TCP before it takes sessions).
   */
  awaitsHealthy: boolean;
}

interface Live extends NodeCatch {
  wake: Wake | undefined;
  /** When Docker last reported the node's own HEALTHCHECK healthy (0: never). */
  healthyAt: number;
  /** Row writes of this node, in call order. */
  saving: Promise<void>;
}

export type CatchTarget = { hostPort: number } | { nodeId: string; portName: string };

export const DEFAULT_PROBE = { probeIntervalMs: 30, probeTimeoutMs: 10_000 } as const;

/** The longest the set change waits for a woken node's first answer to a held connection. */
const DISARM_WAIT_MS = 1000;

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/**
 * Catches connections to sleeping nodes, holds them, wakes the node (one wake at a time per
 * node), probes its port, steps out of the path (disarm) and forwards what it held.
 */
export class Activator {
  private readonly nodes = new Map<string, Live>();
  private readonly orders = new Map<string, Live>();
  private readonly now: () => number;

  constructor(private readonly e: ActivatorEdges) {
    this.now = e.now ?? (() => performance.now());
  }

  // ---- start and rebuild ----

  /** Loads the stored catches: armed ports go back into the set (exactly those), proxy ports are bound again. */
  async load(): Promise<void> {
    for (const c of await this.e.store.load()) this.nodes.set(c.nodeId, { ...c, wake: undefined, healthyAt: 0, saving: Promise.resolve() });
    await this.e.redirects.replace(this.armedPorts());
    for (const c of this.nodes.values()) await this.ensureListeners(c);
  }

  /**
   * Brings the catches in line with exit-node-manager's view: removed nodes are forgotten; an
   * armed node that started after it was armed (woke while the activator was away) is disarmed.
   * Proxy mode: every node with ports gets its public ports.
   */
  async reconcile(snapshot: ReplyOf<'pool.req.snapshot'>): Promise<void> {
    const views = new Map(snapshot.nodes.map((n) => [n.nodeId, n]));
    for (const c of [...this.nodes.values()]) {
      const v = views.get(c.nodeId);
      if (!v || v.status === 'removed') {
        await this.forget(c, 'the node is gone');
        continue;
      }
      if (v.ports.length > 0) await this.updatePorts(c, v.ports);
      if (v.status === 'sleeping' && !c.armed && !c.wake && c.ports.length > 0) await this.rearm(c);
      const wokeSinceArmed = v.status === 'running' && v.startedAt !== null && c.armedAt !== null && Date.parse(v.startedAt) > c.armedAt.getTime();
      if (c.armed && !c.wake && wokeSinceArmed) {
        this.e.log.info({ nodeId: c.nodeId }, 'the node runs since it was armed: disarmed');
        await this.disarm(c);
      }
    }
    if (this.e.mode !== 'proxy') return;
    for (const v of snapshot.nodes) {
      if (v.status === 'removed' || v.ports.length === 0 || this.nodes.has(v.nodeId)) continue;
      await this.adopt({ tenantId: v.tenantId, poolId: v.poolId, nodeId: v.nodeId }, v.ports);
    }
  }

  // ---- requests ----

  async arm(req: Payload<'activator.req.arm'>): Promise<ReplyOf<'activator.req.arm'>> {
    const known = this.nodes.get(req.nodeId);
    if (known?.wake) return { ok: false, error: `node ${req.nodeId} is waking; arm it once it is awake` };
    const names = new Set(req.ports.map((p) => p.name));
    const hostPorts = new Set(req.ports.map((p) => p.hostPort));
    if (names.size !== req.ports.length || hostPorts.size !== req.ports.length) return { ok: false, error: 'ports must have distinct names and host ports' };
    const bad = req.ports.find((p) => p.hostPort < 1 || p.hostPort > 65535);
    if (bad) return { ok: false, error: `port ${bad.name}: hostPort ${bad.hostPort} is not a TCP port` };
    const elsewhere = req.ports.find((p) => p.hostIp !== this.e.nodeHost);
    if (elsewhere) return { ok: false, error: `port ${elsewhere.name} is published on ${elsewhere.hostIp}; this activator catches ${this.e.nodeHost} only` };

    this.claim(req.nodeId, [...hostPorts]);
    const c: Live = known ?? { tenantId: req.tenantId, poolId: req.poolId, nodeId: req.nodeId, ports: [], armed: false, armedAt: null, ...DEFAULT_PROBE, wake: undefined, healthyAt: 0, saving: Promise.resolve() };
    const before = c.ports.map((p) => p.hostPort);
    Object.assign(c, {
      tenantId: req.tenantId,
      poolId: req.poolId,
      ports: req.ports.map((p) => this.portFrom(c, p)),
      armed: true,
      armedAt: new Date(),
      probeIntervalMs: req.probeIntervalMs,
      probeTimeoutMs: req.probeTimeoutMs,
    });
    this.nodes.set(c.nodeId, c);
    try {
      await this.save(c);
      await this.e.redirects.remove(before.filter((p) => !hostPorts.has(p)));
      await this.e.redirects.add([...hostPorts]);
    } catch (err) {
      c.armed = false;
      await this.save(c).catch(() => undefined);
      return { ok: false, error: `could not arm the catch: ${message(err)}` };
    }
    await this.ensureListeners(c);
    this.e.log.info({ nodeId: c.nodeId, ports: [...hostPorts] }, 'armed');
    return { ok: true };
  }

  state(req: Payload<'activator.req.state'>): ReplyOf<'activator.req.state'> {
    const ids = req.nodeIds ? new Set(req.nodeIds) : undefined;
    const nodes: CatchView[] = [...this.nodes.values()]
      .filter((c) => (!req.tenantId || c.tenantId === req.tenantId) && (!ids || ids.has(c.nodeId)))
      .map((c) => ({
        tenantId: c.tenantId,
        poolId: c.poolId,
        nodeId: c.nodeId,
        state: c.wake ? 'waking' : c.armed ? 'armed' : 'awake',
        ports: c.ports.map((p) => ({ name: p.name, hostPort: p.hostPort, publicPort: p.publicPort })),
        probeIntervalMs: c.probeIntervalMs,
        probeTimeoutMs: c.probeTimeoutMs,
      }));
    return { mode: this.e.mode, listenPort: this.e.listenPort, redirected: this.e.redirects.ports(), nodes };
  }

  // ---- connections ----

  /** A connection for a node port: held while the node sleeps or wakes, forwarded when it is awake. */
  accept(socket: Socket, target: CatchTarget): void {
    const found = this.find(target);
    if (!found) {
      this.e.metrics.caught(false);
      this.e.release(socket);
      if ('hostPort' in target) {
        // Redirected to nothing: never again.
        this.e.log.warn({ hostPort: target.hostPort }, 'a connection to a port no node is known for: closed, and the port is no longer redirected');
        this.e.redirects.remove([target.hostPort]).catch((err: unknown) => this.e.log.warn({ hostPort: target.hostPort, err: message(err) }, 'could not remove a port from the set'));
      }
      return;
    }
    const { c, port } = found;
    if (c.wake?.phase === 'probing') {
      this.e.metrics.caught(true);
      this.hold(c.wake, socket, port.hostPort);
      return;
    }
    if (c.wake?.phase === 'ready') {
      // Caught while the ports leave the set: the node is ready, and this one goes as held ones do.
      this.e.metrics.caught(true);
      c.wake.handOver?.(socket, port.hostPort);
      return;
    }
    if (!c.armed) {
      this.e.metrics.caught(false);
      this.e.forward(socket, port.hostPort, () => {});
      return;
    }
    this.e.metrics.caught(true);
    const w = this.startWake(c, 'connection');
    this.hold(w, socket, port.hostPort);
  }

  // ---- events ----

  async orderFulfilled(p: Payload<'order.evt.fulfilled'>): Promise<void> {
    const c = this.orders.get(p.orderId);
    if (c?.wake && c.wake.orderId === p.orderId) this.markStarted(c, c.wake);
  }

  async orderFailed(p: Payload<'order.evt.failed'>): Promise<void> {
    const c = this.orders.get(p.orderId);
    if (c?.wake && c.wake.orderId === p.orderId) this.fail(c, c.wake, `the wake order failed: ${p.reason}`);
  }

  async nodeStarted(p: Payload<'node.evt.started'>): Promise<void> {
    const c = this.nodes.get(p.nodeId);
    if (!c) {
      if (this.e.mode === 'proxy' && p.ports.length > 0) await this.adopt(p, p.ports);
      return;
    }
    if (p.ports.length > 0) await this.updatePorts(c, p.ports);
    // A start older than the arm is the one before this sleep, not a wake.
    const startedAfterArm = c.armedAt === null || Date.parse(p.at) >= c.armedAt.getTime();
    if (!startedAfterArm) return;
    const w = c.wake ?? (c.armed ? this.startWake(c, 'manual') : undefined);
    if (!w) return;
    w.awaitsHealthy = p.healthcheck === true;
    this.markStarted(c, w);
  }

  async nodeHealth(p: Payload<'node.evt.health'>): Promise<void> {
    const c = this.nodes.get(p.nodeId);
    if (!c) return;
    c.healthyAt = p.status === 'healthy' ? Date.parse(p.at) : 0;
    if (c.healthyAt > 0 && c.wake?.awaitsHealthy) this.probeNow(c, c.wake);
  }

  async nodeStopped(p: Payload<'node.evt.stopped'>): Promise<void> {
    const c = this.nodes.get(p.nodeId);
    if (c && !c.wake) {
      // Put to sleep while not armed (a wake carried out before the sleep disarmed it): armed
      // again, so a sleeping node is never uncatchable. Stopped by an operator: not woken by
      // the next connection.
      if (p.reason === 'sleep' && !c.armed && c.ports.length > 0) await this.rearm(c);
      else if (p.reason !== 'sleep' && c.armed) await this.disarm(c);
    }
    // A start the activator did not ask for is over: nothing to wait for. A wake it asked for
    // goes on (exit-node-manager carries out the wake after the stop).
    if (c?.wake?.trigger === 'manual') this.fail(c, c.wake, `the node stopped (${p.reason}) before its port accepted`);
  }

  async nodeRemoved(p: Payload<'node.evt.removed'>): Promise<void> {
    const c = this.nodes.get(p.nodeId);
    if (c) await this.forget(c, `the node was removed (${p.reason})`);
  }

  async poolDeleted(p: Payload<'pool.evt.deleted'>): Promise<void> {
    for (const c of [...this.nodes.values()]) if (c.tenantId === p.tenantId && c.poolId === p.poolId) await this.forget(c, 'the pool was deleted');
  }

  async policyChanged(p: Payload<'sleep.evt.policy'>): Promise<void> {
    for (const c of this.nodes.values()) {
      if (c.tenantId !== p.tenantId || c.poolId !== p.poolId) continue;
      c.probeIntervalMs = p.policy.probeIntervalMs;
      c.probeTimeoutMs = p.policy.probeTimeoutMs;
      await this.save(c);
    }
  }

  /** Shutdown: held connections are let go cleanly (the set and rows stay, so the next process catches again). */
  stop(): void {
    for (const c of this.nodes.values()) if (c.wake) this.fail(c, c.wake, 'the activator is shutting down');
  }

  // ---- the wake ----

  private startWake(c: Live, trigger: Trigger): Wake {
    const w: Wake = {
      trigger,
      orderId: trigger === 'connection' ? randomUUID() : undefined,
      startedAt: this.now(),
      held: new Map(),
      heldTotal: 0,
      probePorts: new Set(),
      readyPorts: new Set(),
      phase: 'probing',
      probing: false,
      started: trigger === 'manual',
      awaitsHealthy: false,
    };
    c.wake = w;
    this.e.log.info({ nodeId: c.nodeId, trigger, orderId: w.orderId }, 'waking');
    if (w.orderId) {
      this.orders.set(w.orderId, c);
      this.e.requestWake(c, w.orderId).catch((err: unknown) => this.fail(c, w, `could not ask for the wake: ${message(err)}`));
    }
    w.deadline = setTimeout(() => this.fail(c, w, `the node's port did not accept within ${c.probeTimeoutMs} ms`), c.probeTimeoutMs);
    w.probeTimer = setTimeout(() => void this.probe(c, w), trigger === 'connection' ? c.probeIntervalMs : 0);
    return w;
  }

  /** exit-node-manager started the node for this wake: the port is tried at once, not at the next tick. */
  private markStarted(c: Live, w: Wake): void {
    if (w.started) return;
    w.started = true;
    this.probeNow(c, w);
  }

  /** Replaces the waiting tick with an attempt now; an attempt in flight schedules the next one itself. */
  private probeNow(c: Live, w: Wake): void {
    if (w.phase !== 'probing' || w.probing) return;
    clearTimeout(w.probeTimer);
    void this.probe(c, w);
  }

  private hold(w: Wake, socket: Socket, hostPort: number): void {
    socket.on('error', () => {});
    socket.pause();
    w.held.set(socket, hostPort);
    w.heldTotal++;
    w.probePorts.add(hostPort);
  }

  /** The ports that must accept: those with held connections, else the node's first. */
  private neededPorts(c: Live, w: Wake): number[] {
    if (w.probePorts.size > 0) return [...w.probePorts];
    return c.ports.slice(0, 1).map((p) => p.hostPort);
  }

  private async probe(c: Live, w: Wake): Promise<void> {
    if (w.phase !== 'probing') return;
    const unhealthy = w.awaitsHealthy && !(c.armedAt !== null && c.healthyAt >= c.armedAt.getTime());
    if (!w.started || unhealthy) {
      w.probeTimer = setTimeout(() => void this.probe(c, w), c.probeIntervalMs);
      return;
    }
    const began = this.now();
    const pending = this.neededPorts(c, w).filter((p) => !w.readyPorts.has(p));
    w.probing = true;
    const results = await Promise.all(pending.map((p) => this.e.probe(p).catch(() => false)));
    w.probing = false;
    pending.forEach((p, i) => results[i] && w.readyPorts.add(p));
    if (w.phase !== 'probing') return;
    if (this.neededPorts(c, w).every((p) => w.readyPorts.has(p))) return this.ready(c, w);
    w.probeTimer = setTimeout(() => void this.probe(c, w), Math.max(0, c.probeIntervalMs - (this.now() - began)));
  }

  private async ready(c: Live, w: Wake): Promise<void> {
    w.phase = 'ready';
    clearTimeout(w.deadline);
    if (w.orderId) this.orders.delete(w.orderId);
    const readyAt = this.now();
    const readyMs = readyAt - w.startedAt;
    this.e.metrics.coldStart('ready', readyMs);

    let firstByteMs: number | undefined;
    let answeredNow = () => {};
    const answered = new Promise<void>((resolve) => (answeredNow = resolve));
    const onFirstByte = () => {
      if (firstByteMs !== undefined) return;
      firstByteMs = this.now() - w.startedAt;
      this.e.metrics.coldStart('first_byte', firstByteMs);
      answeredNow();
    };
    const answeredWithin = async (ms: number) => {
      let bound: NodeJS.Timeout | undefined;
      await Promise.race([answered, new Promise<void>((resolve) => (bound = setTimeout(resolve, Math.max(0, ms))))]);
      clearTimeout(bound);
    };
    // A probe can pass a moment before the app really takes connections (the userland proxy's
    // accept-then-close is only told apart by the settle time): connections of the wake are
    // dialled again if turned away, for what is left of the probe timeout.
    w.handOver = (socket, hostPort) => {
      const redial = { forMs: Math.max(0, c.probeTimeoutMs - (this.now() - w.startedAt)), everyMs: c.probeIntervalMs };
      this.e.forward(socket, hostPort, onFirstByte, redial);
    };
    for (const [socket, hostPort] of w.held) w.handOver(socket, hostPort);
    w.held.clear();

    // Then out of the path: new connections go straight to the node, and those caught until
    // the set has changed are forwarded at once (see accept). The set changes once the node
    // answered a held connection (or after a bound): that answer proves the app serves, where a
    // passed probe may still be the userland proxy's accept; and the nft process would take a
    // core from that first answer. The activator's own dials skip the redirect, so the held
    // connections need not wait for the set.
    if (w.heldTotal > 0) await answeredWithin(this.e.disarmWaitMs ?? DISARM_WAIT_MS);
    // Forgotten meanwhile (removed, its pool deleted): nothing of it is left to disarm.
    if (this.nodes.get(c.nodeId) === c) await this.disarm(c);
    w.phase = 'done';
    c.wake = undefined;
    this.e.log.info({ nodeId: c.nodeId, readyMs: Math.round(readyMs), held: w.heldTotal }, 'awake');

    // Told once the node is out of the path, with the first byte if it came in time.
    if (w.heldTotal > 0) await answeredWithin((this.e.firstByteWaitMs ?? 5000) - (this.now() - readyAt));
    this.e.metrics.wake('woke', w.trigger);
    const event = {
      tenantId: c.tenantId,
      poolId: c.poolId,
      nodeId: c.nodeId,
      at: new Date().toISOString(),
      trigger: w.trigger,
      mode: this.e.mode,
      readyMs: Math.round(readyMs),
      ...(firstByteMs !== undefined ? { firstByteMs: Math.round(firstByteMs) } : {}),
      heldConnections: w.heldTotal,
    };
    await this.e.woke(event).catch((err: unknown) => this.e.log.warn({ nodeId: c.nodeId, err: message(err) }, 'could not publish activator.evt.woke'));
  }

  private fail(c: Live, w: Wake, reason: string): void {
    if (w.phase !== 'probing') return;
    w.phase = 'done';
    clearTimeout(w.deadline);
    clearTimeout(w.probeTimer);
    if (w.orderId) this.orders.delete(w.orderId);
    if (c.wake === w) c.wake = undefined;
    for (const socket of w.held.keys()) this.e.release(socket);
    w.held.clear();
    this.e.log.warn({ nodeId: c.nodeId, reason, held: w.heldTotal }, 'wake failed; the node stays armed');
    this.e.metrics.wake('failed', w.trigger);
    this.e
      .failed({ tenantId: c.tenantId, poolId: c.poolId, nodeId: c.nodeId, at: new Date().toISOString(), reason, heldConnections: w.heldTotal })
      .catch((err: unknown) => this.e.log.warn({ nodeId: c.nodeId, err: message(err) }, 'could not publish activator.evt.failed'));
  }

  // ---- catches, ports, rows ----

  private async rearm(c: Live): Promise<void> {
    c.armed = true;
    c.armedAt = new Date();
    await this.e.redirects.add(c.ports.map((p) => p.hostPort));
    await this.save(c);
    this.e.log.info({ nodeId: c.nodeId }, 'put to sleep while not armed: armed again');
  }

  private async disarm(c: Live): Promise<void> {
    c.armed = false;
    const results = await Promise.allSettled([this.e.redirects.remove(c.ports.map((p) => p.hostPort)), this.save(c)]);
    for (const r of results) if (r.status === 'rejected') this.e.log.warn({ nodeId: c.nodeId, err: message(r.reason) }, 'disarm incomplete');
  }

  private async forget(c: Live, reason: string): Promise<void> {
    if (c.wake) this.fail(c, c.wake, reason);
    this.nodes.delete(c.nodeId);
    this.e.unlisten?.(c.nodeId);
    await this.e.redirects.remove(c.ports.map((p) => p.hostPort));
    c.saving = c.saving.then(() => this.e.store.forget(c.tenantId, c.nodeId));
    await c.saving;
    this.e.log.info({ nodeId: c.nodeId, reason }, 'forgotten');
  }

  /** Proxy mode: a node the activator had not seen gets its (unarmed) catch and public ports. */
  private async adopt(ids: { tenantId: string; poolId: string; nodeId: string }, ports: readonly PublishedPort[]): Promise<void> {
    this.claim(ids.nodeId, ports.map((p) => p.hostPort));
    const c: Live = { ...ids, ports: [], armed: false, armedAt: null, ...DEFAULT_PROBE, wake: undefined, healthyAt: 0, saving: Promise.resolve() };
    c.ports = ports.map((p) => this.portFrom(c, p));
    this.nodes.set(c.nodeId, c);
    await this.ensureListeners(c);
    await this.save(c);
  }

  /** Ports of a started node (or of a snapshot) replace the stored ones, public ports kept by name. */
  private async updatePorts(c: Live, ports: readonly PublishedPort[]): Promise<void> {
    const next = ports.map((p) => this.portFrom(c, p));
    const same = next.length === c.ports.length && next.every((p, i) => p.name === c.ports[i]?.name && p.hostPort === c.ports[i]?.hostPort);
    if (same) return;
    const old = c.ports.map((p) => p.hostPort);
    this.claim(c.nodeId, next.map((p) => p.hostPort));
    c.ports = next;
    if (c.armed) {
      await this.e.redirects.remove(old);
      await this.e.redirects.add(next.map((p) => p.hostPort));
    }
    await this.ensureListeners(c);
    await this.save(c);
  }

  private portFrom(c: NodeCatch, p: PublishedPort): CatchPort {
    const publicPort = c.ports.find((q) => q.name === p.name)?.publicPort ?? null;
    return { name: p.name, containerPort: p.containerPort, hostPort: p.hostPort, publicPort };
  }

  /** A host port belongs to the node that last armed or started with it; older claims are dropped. */
  private claim(nodeId: string, hostPorts: readonly number[]): void {
    const wanted = new Set(hostPorts);
    for (const other of this.nodes.values()) {
      if (other.nodeId === nodeId || !other.ports.some((p) => wanted.has(p.hostPort))) continue;
      other.ports = other.ports.filter((p) => !wanted.has(p.hostPort));
      this.e.log.warn({ nodeId: other.nodeId, hostPorts }, 'another node now has these host ports');
      void this.save(other).catch(() => undefined);
    }
  }

  private async ensureListeners(c: Live): Promise<void> {
    if (!this.e.listen) return;
    let changed = false;
    for (const port of c.ports) {
      try {
        const bound = await this.e.listen(c, port);
        if (bound !== port.publicPort) {
          port.publicPort = bound;
          changed = true;
        }
      } catch (err) {
        this.e.log.warn({ nodeId: c.nodeId, port: port.name, publicPort: port.publicPort, err: message(err) }, 'could not bind the public port; tried again at the next event or resync');
      }
    }
    if (changed) await this.save(c);
  }

  private save(c: Live): Promise<void> {
    const copy: NodeCatch = {
      tenantId: c.tenantId,
      poolId: c.poolId,
      nodeId: c.nodeId,
      ports: c.ports.map((p) => ({ ...p })),
      armed: c.armed,
      armedAt: c.armedAt,
      probeIntervalMs: c.probeIntervalMs,
      probeTimeoutMs: c.probeTimeoutMs,
    };
    const next = c.saving.then(() => this.e.store.save(copy));
    c.saving = next.catch(() => undefined);
    return next;
  }

  private armedPorts(): number[] {
    return [...this.nodes.values()].filter((c) => c.armed).flatMap((c) => c.ports.map((p) => p.hostPort));
  }

  private find(target: CatchTarget): { c: Live; port: CatchPort } | undefined {
    if ('nodeId' in target) {
      const c = this.nodes.get(target.nodeId);
      const port = c?.ports.find((p) => p.name === target.portName);
      return c && port ? { c, port } : undefined;
    }
    for (const c of this.nodes.values()) {
      const port = c.ports.find((p) => p.hostPort === target.hostPort);
      if (port) return { c, port };
    }
    return undefined;
  }
}
