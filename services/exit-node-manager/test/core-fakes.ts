import { randomUUID } from 'node:crypto';
import type { ContainerCreateOptions } from 'dockerode';
import type { Delivery } from '@switchyard/bus';
import type { Payload, PoolSpec, ReplyOf, Subject } from '@switchyard/contracts';
import { Labels } from '@switchyard/docker';
import { DockerOpError, type ContainerRef, type ContainerState, type DockerOps } from '../src/docker-ops.js';
import { createManager, type Manager } from '../src/manager.js';
import type { CoreBus, DrainRecord, DrainStore, HotStateEntry, Log, Repository } from '../src/ports.js';
import type { Node, Pool } from '../src/tables.js';

// Fakes of the manager core's edges (ports.ts): Docker, the pools/nodes tables, NATS and
// Redis, each keeping what happened on one shared timeline so tests can assert the order.

export const TENANT = '00000000-0000-4000-8000-000000000001';
export const IMAGE = 'switchyard/exit-node:test';
export const silent = { info: () => undefined, warn: () => undefined };

/** The pools and nodes tables in memory, with the SQL repository's rules (unique live names, revived ordinals). */
export function memoryRepository(): Repository & { pools: Map<string, Pool>; nodes: Map<string, Node> } {
  const pools = new Map<string, Pool>();
  const nodes = new Map<string, Node>();
  const key = (tenantId: string, id: string) => `${tenantId}/${id}`;
  const copy = <T>(row: T): T => structuredClone(row);
  let tick = Date.parse('2026-01-01T00:00:00Z');
  // Every write a later time, as updated_at is used in event ids.
  const stamp = () => new Date((tick += 1000));
  const live = (p: Pool) => p.status === 'active';
  const newNode = (tenantId: string, id: string, poolId: string, ordinal: number, name: string, server: string | null): Node => ({
    tenant_id: tenantId,
    id,
    pool_id: poolId,
    ordinal,
    name,
    container_id: null,
    status: 'creating',
    ports: [],
    server,
    host_ports: {},
    started_at: null,
    created_at: stamp(),
    updated_at: stamp(),
  });
  const atOrdinal = (tenantId: string, poolId: string, ordinal: number) =>
    [...nodes.values()].find((n) => n.tenant_id === tenantId && n.pool_id === poolId && n.ordinal === ordinal);
  const replace = (old: Node, next: Node) => {
    nodes.delete(key(old.tenant_id, old.id));
    nodes.set(key(next.tenant_id, next.id), next);
    return copy(next);
  };

  const repo: Repository = {
    async insertPool(p) {
      if (pools.has(key(p.tenantId, p.poolId))) return 'exists';
      const others = [...pools.values()].filter(live);
      if (others.some((o) => o.tenant_id === p.tenantId && o.name === p.spec.name)) return 'name_taken';
      if (p.spec.publicPort !== undefined && others.some((o) => o.spec.publicPort === p.spec.publicPort)) return 'public_port_taken';
      const at = stamp();
      pools.set(key(p.tenantId, p.poolId), {
        tenant_id: p.tenantId,
        id: p.poolId,
        name: p.spec.name,
        kind: p.spec.kind,
        spec: copy(p.spec),
        desired_nodes: p.desiredNodes,
        status: 'active',
        created_at: at,
        updated_at: at,
      });
      return 'inserted';
    },
    async findPool(tenantId, poolId) {
      const p = pools.get(key(tenantId, poolId));
      return p && copy(p);
    },
    async findLivePoolByName(tenantId, name) {
      const p = [...pools.values()].find((o) => live(o) && o.tenant_id === tenantId && o.name === name);
      return p && copy(p);
    },
    async listPools(tenantId) {
      return [...pools.values()].filter((p) => live(p) && (tenantId === undefined || p.tenant_id === tenantId)).map(copy);
    },
    async updatePoolSize(pool, spec, desiredNodes) {
      const row = pools.get(key(pool.tenant_id, pool.id))!;
      Object.assign(row, { spec: copy(spec), desired_nodes: desiredNodes, updated_at: stamp() });
      return copy(row);
    },
    async markPoolDeleted(tenantId, poolId) {
      Object.assign(pools.get(key(tenantId, poolId))!, { status: 'deleted', desired_nodes: 0, updated_at: stamp() });
    },
    async poolNodes(tenantId, poolId) {
      return [...nodes.values()]
        .filter((n) => n.tenant_id === tenantId && n.pool_id === poolId)
        .sort((a, b) => a.ordinal - b.ordinal)
        .map(copy);
    },
    async ensureNode(slot) {
      const existing = atOrdinal(slot.tenantId, slot.poolId, slot.ordinal);
      if (existing && existing.status !== 'removed') return copy(existing);
      const node = newNode(slot.tenantId, randomUUID(), slot.poolId, slot.ordinal, slot.name, null);
      if (existing) return replace(existing, node);
      nodes.set(key(node.tenant_id, node.id), node);
      return copy(node);
    },
    async appendNode(pool, n) {
      const ordinal = pool.desired_nodes + 1;
      const existing = atOrdinal(pool.tenant_id, pool.id, ordinal);
      if (existing && existing.status !== 'removed') throw new Error(`pool ${pool.name} has a live node at ordinal ${ordinal} beyond its size`);
      const node = newNode(n.tenantId, n.nodeId, pool.id, ordinal, `${pool.name}-${ordinal}`, n.server);
      if (existing) nodes.delete(key(existing.tenant_id, existing.id));
      nodes.set(key(node.tenant_id, node.id), node);
      const row = pools.get(key(pool.tenant_id, pool.id))!;
      const spec = { ...row.spec, nodes: { min: ordinal, max: Math.max(row.spec.nodes.max, ordinal) } };
      Object.assign(row, { spec, desired_nodes: ordinal, updated_at: stamp() });
      return copy(node);
    },
    async findNode(tenantId, nodeId) {
      const n = nodes.get(key(tenantId, nodeId));
      return n && copy(n);
    },
    async listNodes(filter) {
      return [...nodes.values()]
        .filter((n) => n.status !== 'removed')
        .filter((n) => (filter.tenantId ?? n.tenant_id) === n.tenant_id && (filter.poolId ?? n.pool_id) === n.pool_id && (filter.nodeId ?? n.id) === n.id)
        .sort((a, b) => a.pool_id.localeCompare(b.pool_id) || a.ordinal - b.ordinal)
        .map(copy);
    },
    async snapshotRows(tenantId) {
      const mine = <T extends { tenant_id: string }>(r: T) => tenantId === undefined || r.tenant_id === tenantId;
      const liveNodes = [...nodes.values()].filter((n) => n.status !== 'removed' && mine(n));
      const held = new Set(liveNodes.map((n) => key(n.tenant_id, n.pool_id)));
      return { pools: [...pools.values()].filter((p) => mine(p) && (live(p) || held.has(key(p.tenant_id, p.id)))).map(copy), nodes: liveNodes.map(copy) };
    },
    async updateNode(tenantId, nodeId, patch) {
      const n = nodes.get(key(tenantId, nodeId));
      if (!n) return;
      if (patch.status !== undefined) n.status = patch.status;
      if (patch.containerId !== undefined) n.container_id = patch.containerId;
      if (patch.ports !== undefined) n.ports = copy(patch.ports);
      if (patch.startedAt !== undefined) n.started_at = patch.startedAt;
      n.updated_at = stamp();
    },
    async setHostPorts(tenantId, nodeId, ports) {
      const n = nodes.get(key(tenantId, nodeId));
      if (n) n.host_ports = { ...ports };
    },
    async hostPortsInUse() {
      return new Set([...nodes.values()].filter((n) => n.status !== 'removed').flatMap((n) => Object.values(n.host_ports)));
    },
  };
  return Object.assign(repo, { pools, nodes });
}

interface FakeContainer {
  readonly id: string;
  readonly options: ContainerCreateOptions;
  running: boolean;
  exitCode: number;
  startedAt: Date | null;
  finishedAt: Date | null;
}

/** A Docker engine in memory: containers made from their create options, images that may be missing. */
export function fakeDocker(timeline: string[]) {
  const containers = new Map<string, FakeContainer>();
  const missingImages = new Set<string>();
  // Name to labels, as Docker keeps them.
  const networks = new Map<string, Record<string, string>>();
  const volumes = new Map<string, Record<string, string>>();
  let created = 0;
  let clock = Date.parse('2026-01-01T00:00:00Z');

  const state = (c: FakeContainer): ContainerState => ({
    id: c.id,
    running: c.running,
    status: c.running ? 'running' : c.startedAt ? 'exited' : 'created',
    exitCode: c.exitCode,
    oomKilled: false,
    startedAt: c.startedAt,
    finishedAt: c.finishedAt,
    // Docker reports the bindings of a running container only.
    ports: c.running ? (c.options.HostConfig?.PortBindings ?? {}) : {},
    healthcheck: false,
  });
  const get = (id: string, operation: string) => {
    const c = containers.get(id);
    if (!c) throw new DockerOpError(operation, `docker ${operation} failed: no such container: ${id}`, { cause: { statusCode: 404 } });
    return c;
  };
  const ref = (c: FakeContainer): ContainerRef => ({
    id: c.id,
    running: c.running,
    labels: c.options.Labels ?? {},
    ...(c.options.HostConfig?.NetworkMode ? { networkMode: c.options.HostConfig.NetworkMode } : {}),
  });

  const ops: DockerOps = {
    async ping() {},
    async ensureImage(image) {
      if (missingImages.has(image)) throw new DockerOpError('image.inspect', `the image ${image} is not on this Docker host; build it first`);
    },
    async findContainers(labels) {
      const wanted = Object.entries({ [Labels.managed]: 'true', ...labels });
      return [...containers.values()].filter((c) => wanted.every(([k, v]) => c.options.Labels?.[k] === v)).map(ref);
    },
    async create(options) {
      if ([...containers.values()].some((c) => c.options.name === options.name)) {
        throw new DockerOpError('container.create', `docker container.create failed: the name ${options.name} is in use`, { cause: { statusCode: 409 } });
      }
      const network = options.HostConfig?.NetworkMode;
      if (network && network !== 'host' && !networks.has(network))
        throw new DockerOpError('container.create', `docker container.create failed: network ${network} not found`, { cause: { statusCode: 404 } });
      const id = `c${++created}`;
      containers.set(id, { id, options: structuredClone(options), running: false, exitCode: 0, startedAt: null, finishedAt: null });
      // A mount of a missing named volume creates it with the mount's labels.
      for (const m of options.HostConfig?.Mounts ?? []) if (m.Source && !volumes.has(m.Source)) volumes.set(m.Source, { ...(m.VolumeOptions?.Labels ?? {}) });
      timeline.push(`docker.create:${id}`);
      return id;
    },
    async start(id) {
      const c = get(id, 'container.start');
      Object.assign(c, { running: true, exitCode: 0, startedAt: new Date((clock += 1000)) });
      timeline.push(`docker.start:${id}`);
      return { state: state(c), startMs: 1 };
    },
    async stop(id) {
      const c = get(id, 'container.stop');
      if (c.running) Object.assign(c, { running: false, finishedAt: new Date((clock += 1000)) });
      timeline.push(`docker.stop:${id}`);
    },
    async remove(id) {
      containers.delete(id);
      timeline.push(`docker.remove:${id}`);
    },
    async inspect(id) {
      return state(get(id, 'container.inspect'));
    },
    async logs() {
      return Buffer.alloc(0);
    },
    async ensureNetwork(options) {
      if (!networks.has(options.Name)) timeline.push(`docker.network.create:${options.Name}`);
      networks.set(options.Name, { ...(options.Labels ?? {}) });
    },
    async removeNetwork(name) {
      if (networks.delete(name)) timeline.push(`docker.network.remove:${name}`);
    },
    async findVolumes(labels) {
      const wanted = Object.entries({ [Labels.managed]: 'true', ...labels });
      return [...volumes.entries()].filter(([, l]) => wanted.every(([k, v]) => l[k] === v)).map(([name]) => name);
    },
    async removeVolume(name) {
      if (volumes.delete(name)) timeline.push(`docker.volume.remove:${name}`);
    },
  };
  // A fault set for an operation makes each of its calls fail with the returned error, until it
  // returns undefined or the fault is deleted.
  const faults: Partial<Record<keyof DockerOps, () => Error | undefined>> = {};
  for (const name of Object.keys(ops) as (keyof DockerOps)[]) {
    const real = ops[name] as (...args: unknown[]) => Promise<unknown>;
    (ops as unknown as Record<string, unknown>)[name] = async (...args: unknown[]) => {
      const err = faults[name]?.();
      if (err) {
        timeline.push(`docker.${name}:failed`);
        throw err;
      }
      return real(...args);
    };
  }
  return {
    ops,
    faults,
    containers,
    missingImages,
    networks,
    volumes,
    /** The container's process ends on its own (a crash), as Docker would record it. */
    crash(id: string, exitCode = 137) {
      Object.assign(get(id, 'crash'), { running: false, exitCode, finishedAt: new Date((clock += 1000)) });
    },
  };
}

/** What dockerode reports when it cannot reach the engine's socket. */
export const engineUnreachable = (operation: string) =>
  new DockerOpError(operation, 'the Docker engine is not reachable (connect ECONNREFUSED /var/run/docker.sock)', {
    cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }),
  });

/** The engine's answer with an HTTP status: a refusal (4xx) or its own failure (5xx). */
export const engineAnswer = (operation: string, statusCode: number, message: string) =>
  new DockerOpError(operation, `docker ${operation} failed: ${message}`, { cause: { statusCode } });

interface Published {
  readonly subject: string;
  readonly payload: Record<string, unknown>;
  readonly msgId: string | undefined;
}

/**
 * NATS as the core sees it: what it publishes, and the load balancer's answer to
 * lb.req.traffic (`activeConnections`; `undefined` plays a load balancer that never answers).
 */
export function fakeBus(timeline: string[], activeConnections: (nodeId: string) => number | undefined = () => 0) {
  const published: Published[] = [];
  const bus: CoreBus = {
    async publish(subject, payload, opts) {
      published.push({ subject, payload: payload as Record<string, unknown>, msgId: opts?.msgId });
      const nodeId = (payload as { nodeId?: string }).nodeId;
      timeline.push(nodeId ? `${subject}:${nodeId}` : subject);
    },
    async request(subject, payload) {
      if (subject !== 'lb.req.traffic') throw new Error(`no responder for ${subject}`);
      const { nodeIds = [] } = payload as Payload<'lb.req.traffic'>;
      const nodes = nodeIds.flatMap((nodeId) => {
        const active = activeConnections(nodeId);
        timeline.push(`traffic:${nodeId}=${active ?? 'none'}`);
        if (active === undefined) return [];
        return [{ nodeId, activeConnections: active, totalConnections: active, failedConnections: 0, rxBytes: 0, txBytes: 0 }];
      });
      if (nodes.length === 0) throw new Error('503 no responders');
      const reply: ReplyOf<'lb.req.traffic'> = { nodes };
      return reply as ReplyOf<typeof subject>;
    },
  };
  return {
    bus,
    published,
    /** The payloads published on one subject, in order. */
    on: (subject: string) => published.filter((m) => m.subject === subject).map((m) => m.payload),
  };
}

export interface CoreOptions {
  /** lb.req.traffic's answer per node; 0 unless said. */
  activeConnections?: (nodeId: string) => number | undefined;
  /** Receives the core's warnings. */
  warn?: (obj: object, msg: string) => void;
  /**
   * Drains run in the background; by default each command also waits for them, so a test reads
   * what the command's order ends with. `false` returns as the consumer does, once it is recorded.
   */
  awaitDrains?: boolean;
  drainHeartbeatMs?: number;
  /** Shared by two cores to play a manager restarted over the same tables. */
  drainStore?: ReturnType<typeof memoryDrainStore>;
}

/** The pool_drains table in memory. */
export function memoryDrainStore(): DrainStore & { records: Map<string, DrainRecord> } {
  const records = new Map<string, DrainRecord>();
  return {
    records,
    async add(d) {
      const key = `${d.tenantId}/${d.id}`;
      if (!records.has(key)) records.set(key, d);
      return records.get(key);
    },
    async list(filter = {}) {
      return [...records.values()].filter((r) => (!filter.tenantId || r.tenantId === filter.tenantId) && (!filter.poolId || r.poolId === filter.poolId));
    },
    async remove(tenantId, id) {
      records.delete(`${tenantId}/${id}`);
    },
  };
}

/** The manager's core over fakes of all its edges. */
export function core(opts: CoreOptions = {}) {
  const timeline: string[] = [];
  const repo = memoryRepository();
  const docker = fakeDocker(timeline);
  const nats = fakeBus(timeline, opts.activeConnections);
  const hot: HotStateEntry[] = [];
  const forgotten: string[] = [];
  let port = 40_000;
  const drainStore = opts.drainStore ?? memoryDrainStore();
  const created: Manager = createManager({
    repo,
    docker: docker.ops,
    bus: nats.bus,
    hotState: async (e) => void hot.push(e),
    stats: { forget: async (nodeId) => void forgotten.push(nodeId) },
    log: opts.warn ? { ...silent, warn: opts.warn as Log['warn'] } : silent,
    config: { exitNodeImage: IMAGE, publishHost: '127.0.0.1', addedPoolNetwork: 'bridge' },
    pickPort: async () => ++port,
    isExpected: () => false,
    drainPollMs: 20,
    drainStore,
    ...(opts.drainHeartbeatMs ? { drainHeartbeatMs: opts.drainHeartbeatMs } : {}),
  });
  const awaited = Object.fromEntries(
    Object.entries(created.commands).map(([subject, handle]) => [
      subject,
      async (p: never, d: Delivery) => {
        await (handle as (p: never, d: Delivery) => Promise<void>)(p, d);
        await created.drains.idle();
      },
    ]),
  ) as Manager['commands'];
  const manager: Manager = opts.awaitDrains === false ? created : { ...created, commands: awaited };
  const nodesOf = async (poolId: string) => (await repo.poolNodes(TENANT, poolId)).filter((n) => n.status !== 'removed');
  return { manager, repo, docker, nats, hot, forgotten, timeline, nodesOf, drainStore };
}

export function exitPool(name: string, nodes: number, extra: Partial<PoolSpec> = {}): PoolSpec {
  return { name, kind: 'exit', country: 'JP', nodes: { min: nodes, max: Math.max(nodes, 1) }, ...extra };
}

/** pool.cmd.create of a new pool; returns its id. */
export async function createPool(m: Manager, spec: PoolSpec, orderId: string = randomUUID()): Promise<string> {
  const poolId = randomUUID();
  await m.commands['pool.cmd.create']({ orderId, tenantId: TENANT, poolId, spec }, delivery('pool.cmd.create'));
  return poolId;
}

/** A command's first delivery. */
export function delivery(subject: Subject): Delivery {
  return { subject, deliveryCount: 1, streamSequence: 1 };
}
