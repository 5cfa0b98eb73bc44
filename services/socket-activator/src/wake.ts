import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import type { NodeCatch } from './catches.js';
import { type ActivatorEdges, message } from './edges.js';

export type Trigger = 'connection' | 'manual';

/** The longest the set change waits for a woken node's first answer to a held connection. */
const DISARM_WAIT_MS = 1000;

/** What a wake reads of its node's catch; read live, since ports and probe settings may change meanwhile. */
export type WakingNode = Readonly<NodeCatch> & { readonly healthyAt: number };

/** What a wake needs of the activator around it. */
export interface WakeHooks {
  /** Takes the node's ports out of the set (unless the node was forgotten meanwhile). */
  disarm(): Promise<void>;
  /** Puts them back after a wake that turned out not to have woken the node. */
  rearm(): Promise<void>;
  /** The wake is over, woken or failed: the node may be armed or woken again. */
  settled(w: Wake): void;
}

type WakeEdges = Pick<ActivatorEdges, 'mode' | 'requestWake' | 'probe' | 'forward' | 'release' | 'woke' | 'failed' | 'metrics' | 'log' | 'firstByteWaitMs' | 'disarmWaitMs'>;

/**
 * One wake of a node: holds the connections caught meanwhile, probes the ports they are for,
 * forwards them once those accept, steps out of the path (disarm) and tells how it went.
 * probing → ready (disarming; new catches still join) → done.
 */
export class Wake {
  readonly orderId: string | undefined;
  readonly startedAt: number;
  private phase: 'probing' | 'ready' | 'done' = 'probing';
  /** Held sockets and the host port each is for. */
  private readonly held = new Map<Socket, number>();
  private heldTotal = 0;
  private readonly probePorts = new Set<number>();
  private readonly readyPorts = new Set<number>();
  private deadline: NodeJS.Timeout | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  /** An attempt is in flight; it schedules the next tick when it ends. */
  private probing = false;
  /** Once ready: forwards a connection of this wake to the node (dialled again if turned away). */
  private handOver: ((socket: Socket, hostPort: number) => void) | undefined;
  /**
   * exit-node-manager started the node for this wake (node.evt.started after the arm, or the
   * wake order fulfilled). Probing waits for it: before, the node may still be running, about
   * to be put to sleep (a connection forwarded to it would be cut by the stop); and a probe
   * made while Docker starts the container makes docker-proxy's dial stall on ARP for a second.
   */
  private started: boolean;
  /**
   * The started container has a HEALTHCHECK of its own: it is ready once Docker reports it
   * healthy, not when its port first accepts (PostgreSQL accepts TCP before it takes sessions).
   */
  awaitsHealthy = false;

  constructor(
    private readonly c: WakingNode,
    readonly trigger: Trigger,
    private readonly e: WakeEdges,
    private readonly now: () => number,
    private readonly hooks: WakeHooks,
  ) {
    this.orderId = trigger === 'connection' ? randomUUID() : undefined;
    this.startedAt = now();
    this.started = trigger === 'manual';
  }

  /** Asks for the wake (a connection's) and starts the clock; the activator has registered it by then. */
  start(): void {
    const { c, e } = this;
    e.log.info({ nodeId: c.nodeId, trigger: this.trigger, orderId: this.orderId }, 'waking');
    if (this.orderId) e.requestWake(c, this.orderId).catch((err: unknown) => this.fail(`could not ask for the wake: ${message(err)}`));
    this.deadline = setTimeout(() => this.fail(`the node's port did not accept within ${c.probeTimeoutMs} ms`), c.probeTimeoutMs);
    this.probeTimer = setTimeout(() => void this.probe(), this.trigger === 'connection' ? c.probeIntervalMs : 0);
  }

  /** A connection caught during the wake: held while probing, forwarded once ready. */
  take(socket: Socket, hostPort: number): void {
    if (this.phase === 'probing') this.hold(socket, hostPort);
    // Caught while the ports leave the set: the node is ready, and this one goes as held ones do.
    else if (this.phase === 'ready') this.handOver?.(socket, hostPort);
  }

  /** exit-node-manager started the node for this wake: the port is tried at once, not at the next tick. */
  markStarted(): void {
    if (this.started) return;
    this.started = true;
    this.probeNow();
  }

  /** Replaces the waiting tick with an attempt now; an attempt in flight schedules the next one itself. */
  probeNow(): void {
    if (this.phase !== 'probing' || this.probing) return;
    clearTimeout(this.probeTimer);
    void this.probe();
  }

  /** Lets the held connections go cleanly and tells why; the node stays armed. */
  fail(reason: string): void {
    if (this.phase !== 'probing') return;
    const { c, e } = this;
    this.phase = 'done';
    clearTimeout(this.deadline);
    clearTimeout(this.probeTimer);
    this.hooks.settled(this);
    for (const socket of this.held.keys()) e.release(socket);
    this.held.clear();
    void this.tellFailed(reason);
  }

  private tellFailed(reason: string): Promise<void> {
    const { c, e } = this;
    e.log.warn({ nodeId: c.nodeId, reason, held: this.heldTotal }, 'wake failed; the node stays armed');
    e.metrics.wake('failed', this.trigger);
    return e
      .failed({ tenantId: c.tenantId, poolId: c.poolId, nodeId: c.nodeId, at: new Date().toISOString(), reason, heldConnections: this.heldTotal })
      .catch((err: unknown) => e.log.warn({ nodeId: c.nodeId, err: message(err) }, 'could not publish activator.evt.failed'));
  }

  private hold(socket: Socket, hostPort: number): void {
    socket.on('error', () => {});
    socket.pause();
    this.held.set(socket, hostPort);
    this.heldTotal++;
    this.probePorts.add(hostPort);
  }

  /** The ports that must accept: those with held connections, else the node's first. */
  private neededPorts(): number[] {
    if (this.probePorts.size > 0) return [...this.probePorts];
    return this.c.ports.slice(0, 1).map((p) => p.hostPort);
  }

  private async probe(): Promise<void> {
    const { c } = this;
    if (this.phase !== 'probing') return;
    const unhealthy = this.awaitsHealthy && !(c.armedAt !== null && c.healthyAt >= c.armedAt.getTime());
    if (!this.started || unhealthy) {
      this.probeTimer = setTimeout(() => void this.probe(), c.probeIntervalMs);
      return;
    }
    const began = this.now();
    const pending = this.neededPorts().filter((p) => !this.readyPorts.has(p));
    this.probing = true;
    const results = await Promise.all(pending.map((p) => this.e.probe(p).catch(() => false)));
    this.probing = false;
    pending.forEach((p, i) => results[i] && this.readyPorts.add(p));
    if (this.phase !== 'probing') return;
    if (this.neededPorts().every((p) => this.readyPorts.has(p))) return this.ready();
    this.probeTimer = setTimeout(() => void this.probe(), Math.max(0, c.probeIntervalMs - (this.now() - began)));
  }

  private async ready(): Promise<void> {
    const { c, e } = this;
    this.phase = 'ready';
    clearTimeout(this.deadline);
    const readyAt = this.now();
    const readyMs = readyAt - this.startedAt;
    e.metrics.coldStart('ready', readyMs);

    // How the handed-over connections fare: the first byte says the node serves; every one
    // turned away says the probe was fooled (below) and the wake failed after all.
    let firstByteMs: number | undefined;
    let handedOver = 0;
    let turnedAway = 0;
    let outcomeNow = () => {};
    const outcome = new Promise<void>((resolve) => (outcomeNow = resolve));
    const onFirstByte = () => {
      if (firstByteMs !== undefined) return;
      firstByteMs = this.now() - this.startedAt;
      e.metrics.coldStart('first_byte', firstByteMs);
      outcomeNow();
    };
    const onTurnedAway = () => {
      if (++turnedAway === handedOver) outcomeNow();
    };
    const allTurnedAway = () => firstByteMs === undefined && handedOver > 0 && turnedAway === handedOver;
    const outcomeWithin = async (ms: number) => {
      let bound: NodeJS.Timeout | undefined;
      await Promise.race([outcome, new Promise<void>((resolve) => (bound = setTimeout(resolve, Math.max(0, ms))))]);
      clearTimeout(bound);
    };
    // A probe can pass a moment before the app really takes connections (the userland proxy's
    // accept-then-close is only told apart by the settle time, which a loaded host can outlast):
    // connections of the wake are dialled again if turned away, for what is left of the probe
    // timeout.
    this.handOver = (socket, hostPort) => {
      handedOver++;
      const redial = { forMs: Math.max(0, c.probeTimeoutMs - (this.now() - this.startedAt)), everyMs: c.probeIntervalMs };
      e.forward(socket, hostPort, { onFirstByte, redial, onTurnedAway });
    };
    for (const [socket, hostPort] of this.held) this.handOver(socket, hostPort);
    this.held.clear();

    // Then out of the path: new connections go straight to the node, and those caught until
    // the set has changed are forwarded at once (see take). The set changes once the node
    // answered a held connection (or after a bound): that answer proves the app serves, where a
    // passed probe may still be the userland proxy's accept; and the nft process would take a
    // core from that first answer. The activator's own dials skip the redirect, so the held
    // connections need not wait for the set.
    if (this.heldTotal > 0) await outcomeWithin(e.disarmWaitMs ?? DISARM_WAIT_MS);
    if (allTurnedAway()) return this.turnedAway(readyMs);
    await this.hooks.disarm();
    this.phase = 'done';
    this.hooks.settled(this);
    e.log.info({ nodeId: c.nodeId, readyMs: Math.round(readyMs), held: this.heldTotal }, 'awake');

    // Told once the node is out of the path, with the first byte if it came in time.
    if (this.heldTotal > 0) await outcomeWithin((e.firstByteWaitMs ?? 5000) - (this.now() - readyAt));
    if (allTurnedAway()) {
      await this.hooks.rearm().catch((err: unknown) => e.log.warn({ nodeId: c.nodeId, err: message(err) }, 'could not arm the node again'));
      return this.turnedAway(readyMs);
    }
    e.metrics.wake('woke', this.trigger);
    const event = {
      tenantId: c.tenantId,
      poolId: c.poolId,
      nodeId: c.nodeId,
      at: new Date().toISOString(),
      trigger: this.trigger,
      mode: e.mode,
      readyMs: Math.round(readyMs),
      ...(firstByteMs !== undefined ? { firstByteMs: Math.round(firstByteMs) } : {}),
      heldConnections: this.heldTotal,
    };
    await e.woke(event).catch((err: unknown) => e.log.warn({ nodeId: c.nodeId, err: message(err) }, 'could not publish activator.evt.woke'));
  }

  /** The probe passed, yet the node turned every connection of the wake away: a failed wake, the node armed. */
  private turnedAway(readyMs: number): Promise<void> {
    if (this.phase === 'ready') {
      this.phase = 'done';
      this.hooks.settled(this);
    }
    return this.tellFailed(
      `the node's port did not accept within ${this.c.probeTimeoutMs} ms (a probe passed after ${Math.round(readyMs)} ms, then every held connection was turned away)`,
    );
  }
}
