import type { HealthStatus, NodeHealth, NodeView, Payload, PoolSpec, PoolView, PublishedPort } from '@switchyard/contracts';
import type { NodeTraffic, TrafficCounters } from './counters.js';
import type { Candidate } from './select.js';

export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

interface HealthInfo {
  status: HealthStatus;
  score: number;
  latencyMs: number | null;
}

/**
 * exit-node-manager publishes a node event before it writes the row a snapshot reads, so a
 * snapshot asked for shortly after an event may still describe the node as it was. What an
 * event set within this long before the snapshot was asked for wins over the snapshot.
 */
const EVENT_TRUST_MS = 5000;

const UNKNOWN: HealthInfo = Object.freeze({ status: 'unknown', score: 0, latencyMs: null }) as HealthInfo;

export class RouteNode implements Candidate {
  status = 'creating';
  draining = false;
  endpoint: Endpoint | undefined;
  /** What the endpoint was taken from: it depends on the pool's kind, which may arrive later. */
  ports: readonly PublishedPort[] = [];
  region: string | null = null;
  health: HealthStatus = 'unknown';
  score = 0;
  latencyMs: number | null = null;
  softLimit: number | undefined;
  hardLimit: number | undefined;
  /** When a node event last set status, endpoint or draining (0: only snapshots have). */
  lastEventAt = 0;

  constructor(
    readonly id: string,
    readonly tenantId: string,
    readonly poolId: string,
    readonly traffic: NodeTraffic,
  ) {}

  get active(): number {
    return this.traffic.active;
  }

  get asleep(): boolean {
    return this.status === 'sleeping';
  }
}

export interface RoutePool {
  readonly id: string;
  readonly tenantId: string;
  readonly name: string;
  readonly spec: PoolSpec;
  /**
   * Running or sleeping, non-draining nodes with an endpoint, ordered by id: what selection
   * sees (it prefers awake ones).
   */
  members: RouteNode[];
}

/** The address a node's port is reached on; a wildcard bind is reached on loopback. */
function endpointOf(kind: string, ports: readonly PublishedPort[]): Endpoint | undefined {
  const p = kind === 'exit' ? ports.find((x) => x.name === 'proxy') : ports[0];
  if (!p) return undefined;
  return { host: p.hostIp === '0.0.0.0' || p.hostIp === '' ? '127.0.0.1' : p.hostIp, port: p.hostPort };
}

/**
 * What this process knows about pools, nodes and their health, rebuilt from a snapshot and
 * kept current by events. Selection reads `members` lists, recomputed only on changes.
 */
export class RoutingTable {
  private readonly pools = new Map<string, RoutePool>();
  private readonly nodes = new Map<string, RouteNode>();
  private readonly health = new Map<string, HealthInfo>();
  private readonly groups = new Map<string, RoutePool[]>();
  /** Nodes removed by an event, and when: a snapshot asked for soon after must not bring them back. */
  private readonly removedAt = new Map<string, number>();
  /** Called after every change, e.g. to open or close app-pool listeners. */
  onChange: () => void = () => undefined;

  /**
   * @param workers processes sharing the connections: each enforces its share of a pool's
   * limits, as the connections are spread evenly over them.
   */
  constructor(
    private readonly traffic: TrafficCounters,
    private readonly workers = 1,
    private readonly now: () => number = Date.now,
  ) {}

  pool(id: string): RoutePool | undefined {
    return this.pools.get(id);
  }

  node(id: string): RouteNode | undefined {
    return this.nodes.get(id);
  }

  allPools(): Iterable<RoutePool> {
    return this.pools.values();
  }

  allNodes(): Iterable<RouteNode> {
    return this.nodes.values();
  }

  /**
   * Exit pools of a country (undefined: of every country), of one tenant or (tenant
   * undefined) of all, by name then id.
   */
  exitPools(country: string | undefined, tenantId: string | undefined): RoutePool[] {
    const key = `${country ?? '*'}|${tenantId ?? '*'}`;
    let g = this.groups.get(key);
    if (!g) {
      g = [...this.pools.values()]
        .filter((p) => p.spec.kind === 'exit' && (!country || p.spec.country?.toUpperCase() === country) && (!tenantId || p.tenantId === tenantId))
        .sort((a, b) => (a.name === b.name ? (a.id < b.id ? -1 : 1) : a.name < b.name ? -1 : 1));
      this.groups.set(key, g);
    }
    return g;
  }

  /**
   * Replaces everything with a snapshot; health too when the health monitor answered.
   * `requestedAt` (this table's clock) is when the snapshot was asked for: a node's status,
   * endpoint and draining set by an event since `requestedAt - EVENT_TRUST_MS` are kept, and a
   * node removed by an event in that window stays removed.
   */
  replace(snapshot: { pools: PoolView[]; nodes: NodeView[] }, health: NodeHealth[] | undefined, requestedAt = this.now()): void {
    const trusted = requestedAt - EVENT_TRUST_MS;
    const previous = new Map(this.nodes);
    for (const [id, at] of this.removedAt) if (at <= trusted) this.removedAt.delete(id);
    this.pools.clear();
    this.nodes.clear();
    if (health) {
      this.health.clear();
      for (const h of health) this.health.set(h.nodeId, { status: h.status, score: h.score, latencyMs: h.latencyMs });
    }
    for (const p of snapshot.pools) this.pools.set(p.poolId, { id: p.poolId, tenantId: p.tenantId, name: p.name, spec: p.spec, members: [] });
    for (const v of snapshot.nodes) {
      if (this.removedAt.has(v.nodeId)) continue;
      const old = previous.get(v.nodeId);
      const n = old ?? new RouteNode(v.nodeId, v.tenantId, v.poolId, this.traffic.of(v.nodeId));
      this.nodes.set(v.nodeId, n);
      n.region = v.region;
      if (old && old.lastEventAt > trusted) continue;
      n.status = v.status;
      n.draining = old?.draining ?? false;
      n.ports = v.ports;
      n.endpoint = endpointOf(v.kind, v.ports);
    }
    // Created or started by an event the snapshot does not show yet.
    for (const [id, n] of previous) if (!this.nodes.has(id) && n.lastEventAt > trusted) this.nodes.set(id, n);
    this.changed();
  }

  setPool(p: Payload<'pool.evt.changed'>): void {
    const old = this.pools.get(p.poolId);
    this.pools.set(p.poolId, { id: p.poolId, tenantId: p.tenantId, name: p.name, spec: p.spec, members: old?.members ?? [] });
    // exit-node-manager announces a new pool after starting its nodes: their endpoints were
    // taken before the pool's kind was known.
    for (const n of this.nodes.values()) if (n.poolId === p.poolId && n.ports.length > 0) n.endpoint = endpointOf(p.spec.kind, n.ports);
    this.changed();
  }

  deletePool(poolId: string): void {
    this.pools.delete(poolId);
    for (const [id, n] of this.nodes) if (n.poolId === poolId) this.nodes.delete(id);
    this.changed();
  }

  nodeCreated(p: Payload<'node.evt.created'>): void {
    this.touch(this.ensureNode(p.nodeId, p.tenantId, p.poolId));
    this.changed();
  }

  nodeStarted(p: Payload<'node.evt.started'>): void {
    const n = this.touch(this.ensureNode(p.nodeId, p.tenantId, p.poolId));
    // A node back from sleep (or a stop) starts over as unchecked, not as the unhealthy its
    // stop made it: the health monitor's next transition says what it is.
    if (n.status !== 'running') this.health.delete(p.nodeId);
    n.status = 'running';
    n.draining = false;
    n.ports = p.ports;
    n.endpoint = endpointOf(this.pools.get(p.poolId)?.spec.kind ?? 'exit', p.ports);
    this.changed();
  }

  /**
   * Stopped or died: out of rotation at once, and its health starts over when it returns.
   * Put to sleep: it keeps its endpoint, where the socket activator catches connections.
   */
  nodeDown(nodeId: string, status: 'stopped' | 'sleeping' | 'error'): void {
    const n = this.nodes.get(nodeId);
    this.health.delete(nodeId);
    if (!n) return;
    this.touch(n).status = status;
    this.changed();
  }

  nodeRemoved(nodeId: string): void {
    this.nodes.delete(nodeId);
    this.removedAt.set(nodeId, this.now());
    this.health.delete(nodeId);
    this.changed();
  }

  nodeDraining(nodeId: string): void {
    const n = this.nodes.get(nodeId);
    if (!n) return;
    this.touch(n).draining = true;
    this.changed();
  }

  healthChanged(p: Payload<'health.evt.changed'>): void {
    const prev = this.health.get(p.nodeId);
    this.health.set(p.nodeId, { status: p.status, score: p.score, latencyMs: prev?.latencyMs ?? null });
    this.changed();
  }

  /**
   * Scores and latencies move with every check but are only announced on a transition, so
   * they are polled. The status stays as events set it: a reply computed before a newer
   * health.evt.changed must not undo it.
   */
  refreshScores(health: readonly NodeHealth[]): void {
    let moved = false;
    for (const h of health) {
      const known = this.health.get(h.nodeId);
      if (!known || (known.score === h.score && known.latencyMs === h.latencyMs)) continue;
      this.health.set(h.nodeId, { status: known.status, score: h.score, latencyMs: h.latencyMs });
      moved = true;
    }
    if (moved) this.changed();
  }

  private touch(n: RouteNode): RouteNode {
    n.lastEventAt = this.now();
    this.removedAt.delete(n.id);
    return n;
  }

  private ensureNode(id: string, tenantId: string, poolId: string): RouteNode {
    let n = this.nodes.get(id);
    if (!n) {
      n = new RouteNode(id, tenantId, poolId, this.traffic.of(id));
      this.nodes.set(id, n);
    }
    return n;
  }

  private changed(): void {
    this.groups.clear();
    for (const p of this.pools.values()) p.members = [];
    const sorted = [...this.nodes.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
    for (const n of sorted) {
      const pool = this.pools.get(n.poolId);
      const h = this.health.get(n.id) ?? UNKNOWN;
      n.health = h.status;
      n.score = h.score;
      n.latencyMs = h.latencyMs;
      n.region ??= pool?.spec.region ?? null;
      const limits = pool?.spec.limits;
      n.softLimit = limits && Math.ceil(limits.softConnections / this.workers);
      n.hardLimit = limits && Math.ceil(limits.hardConnections / this.workers);
      if (pool && (n.status === 'running' || n.status === 'sleeping') && !n.draining && n.endpoint) pool.members.push(n);
    }
    this.onChange();
  }
}
