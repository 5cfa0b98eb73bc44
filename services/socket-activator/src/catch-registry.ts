import type { Payload, PublishedPort, ReplyOf } from '@switchyard/contracts';
import type { CatchPort, NodeCatch } from './catches.js';
import { type ActivatorEdges, message } from './edges.js';

/** A node's catch as the activator holds it. */
export interface LiveCatch extends NodeCatch {
  /** When Docker last reported the node's own HEALTHCHECK healthy (0: never). */
  healthyAt: number;
  /** Row writes of this node, in call order. */
  saving: Promise<void>;
}

export type CatchTarget = { hostPort: number } | { nodeId: string; portName: string };

export const DEFAULT_PROBE = { probeIntervalMs: 30, probeTimeoutMs: 10_000 } as const;

type RegistryEdges = Pick<ActivatorEdges, 'nodeHost' | 'store' | 'redirects' | 'listen' | 'unlisten' | 'log'>;

/**
 * The catches: which node owns which host port, whether its ports are in the redirect set
 * (armed), its stored row and (proxy mode) its public ports. Keeps the set, the rows and the
 * listeners in line with each other; knows nothing of wakes.
 */
export class CatchRegistry {
  private readonly nodes = new Map<string, LiveCatch>();

  constructor(private readonly e: RegistryEdges) {}

  /** Loads the stored catches: armed ports go back into the set (exactly those), proxy ports are bound again. */
  async load(): Promise<void> {
    for (const c of await this.e.store.load()) this.nodes.set(c.nodeId, { ...c, healthyAt: 0, saving: Promise.resolve() });
    await this.e.redirects.replace(this.armedPorts());
    for (const c of this.nodes.values()) await this.ensureListeners(c);
  }

  get(nodeId: string): LiveCatch | undefined {
    return this.nodes.get(nodeId);
  }

  all(): LiveCatch[] {
    return [...this.nodes.values()];
  }

  find(target: CatchTarget): { c: LiveCatch; port: CatchPort } | undefined {
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

  /** Puts the node's ports into the set and stores the catch armed (a new node's catch is made). */
  async arm(req: Payload<'activator.req.arm'>): Promise<ReplyOf<'activator.req.arm'>> {
    const names = new Set(req.ports.map((p) => p.name));
    const hostPorts = new Set(req.ports.map((p) => p.hostPort));
    if (names.size !== req.ports.length || hostPorts.size !== req.ports.length) return { ok: false, error: 'ports must have distinct names and host ports' };
    const bad = req.ports.find((p) => p.hostPort < 1 || p.hostPort > 65535);
    if (bad) return { ok: false, error: `port ${bad.name}: hostPort ${bad.hostPort} is not a TCP port` };
    const elsewhere = req.ports.find((p) => p.hostIp !== this.e.nodeHost);
    if (elsewhere) return { ok: false, error: `port ${elsewhere.name} is published on ${elsewhere.hostIp}; this activator catches ${this.e.nodeHost} only` };

    this.claim(req.nodeId, [...hostPorts]);
    const c: LiveCatch = this.nodes.get(req.nodeId) ?? {
      tenantId: req.tenantId,
      poolId: req.poolId,
      nodeId: req.nodeId,
      ports: [],
      armed: false,
      armedAt: null,
      ...DEFAULT_PROBE,
      healthyAt: 0,
      saving: Promise.resolve(),
    };
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

  async rearm(c: LiveCatch): Promise<void> {
    c.armed = true;
    c.armedAt = new Date();
    await this.e.redirects.add(c.ports.map((p) => p.hostPort));
    await this.save(c);
    this.e.log.info({ nodeId: c.nodeId }, 'put to sleep while not armed: armed again');
  }

  async disarm(c: LiveCatch): Promise<void> {
    c.armed = false;
    const results = await Promise.allSettled([this.e.redirects.remove(c.ports.map((p) => p.hostPort)), this.save(c)]);
    for (const r of results) if (r.status === 'rejected') this.e.log.warn({ nodeId: c.nodeId, err: message(r.reason) }, 'disarm incomplete');
  }

  async forget(c: LiveCatch, reason: string): Promise<void> {
    this.nodes.delete(c.nodeId);
    this.e.unlisten?.(c.nodeId);
    await this.e.redirects.remove(c.ports.map((p) => p.hostPort));
    c.saving = c.saving.then(() => this.e.store.forget(c.tenantId, c.nodeId));
    await c.saving;
    this.e.log.info({ nodeId: c.nodeId, reason }, 'forgotten');
  }

  /** Proxy mode: a node the activator had not seen gets its (unarmed) catch and public ports. */
  async adopt(ids: { tenantId: string; poolId: string; nodeId: string }, ports: readonly PublishedPort[]): Promise<void> {
    this.claim(
      ids.nodeId,
      ports.map((p) => p.hostPort),
    );
    const c: LiveCatch = { ...ids, ports: [], armed: false, armedAt: null, ...DEFAULT_PROBE, healthyAt: 0, saving: Promise.resolve() };
    c.ports = ports.map((p) => this.portFrom(c, p));
    this.nodes.set(c.nodeId, c);
    await this.ensureListeners(c);
    await this.save(c);
  }

  /** Ports of a started node (or of a snapshot) replace the stored ones, public ports kept by name. */
  async updatePorts(c: LiveCatch, ports: readonly PublishedPort[]): Promise<void> {
    const next = ports.map((p) => this.portFrom(c, p));
    const same = next.length === c.ports.length && next.every((p, i) => p.name === c.ports[i]?.name && p.hostPort === c.ports[i]?.hostPort);
    if (same) return;
    const old = c.ports.map((p) => p.hostPort);
    this.claim(
      c.nodeId,
      next.map((p) => p.hostPort),
    );
    c.ports = next;
    if (c.armed) {
      await this.e.redirects.remove(old);
      await this.e.redirects.add(next.map((p) => p.hostPort));
    }
    await this.ensureListeners(c);
    await this.save(c);
  }

  save(c: LiveCatch): Promise<void> {
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

  private async ensureListeners(c: LiveCatch): Promise<void> {
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
        this.e.log.warn(
          { nodeId: c.nodeId, port: port.name, publicPort: port.publicPort, err: message(err) },
          'could not bind the public port; tried again at the next event or resync',
        );
      }
    }
    if (changed) await this.save(c);
  }

  private armedPorts(): number[] {
    return [...this.nodes.values()].filter((c) => c.armed).flatMap((c) => c.ports.map((p) => p.hostPort));
  }
}
