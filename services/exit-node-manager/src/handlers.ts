import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Attributes } from '@opentelemetry/api';
import type { Bus, ConsumerHandlers } from '@switchyard/bus';
import {
  formatIssues,
  poolSpecIssues,
  type NetworkMode,
  type NodeStatus,
  type Payload,
  type PoolSpec,
  type PublishedPort,
} from '@switchyard/contracts';
import { Labels } from '@switchyard/docker';
import { containerSpec, imageOf, nodeName, portsToAllocate, publishedPorts, type SpecConfig } from './container-spec.js';
import { DockerOpError, type ContainerRef, type DockerOps } from './docker-ops.js';
import * as repo from './repository.js';
import type { Db } from './repository.js';
import type { StatsStore } from './hot-state.js';
import type { Node, Pool } from './tables.js';

/** The part of a pino logger the handlers use. */
export interface Log {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface HotStateEntry {
  readonly tenantId: string;
  readonly poolId: string;
  readonly nodeId: string;
  readonly status: NodeStatus;
}
/** Records a node's current status where other services read hot state; must not throw. */
export type HotState = (entry: HotStateEntry) => Promise<void>;

export interface ManagerConfig extends SpecConfig {
  /** Network of the exit pools node.cmd.add creates. */
  readonly addedPoolNetwork: NetworkMode;
}

export interface HandlerDeps {
  readonly db: Db;
  /** Stops and removals must go through intent tracking, so their `die` is not taken for a crash. */
  readonly docker: DockerOps;
  readonly bus: Pick<Bus, 'publish' | 'request'>;
  readonly hotState: HotState;
  readonly stats: StatsStore;
  readonly log: Log;
  readonly config: ManagerConfig;
  /** A free port on the given host address, for host-network nodes. */
  readonly pickPort: (host: string) => Promise<number>;
  /** Whether the manager itself is stopping or removing this container right now. */
  readonly isExpected: (containerId: string) => boolean;
}

/** A death Docker reported for a node's container. */
export interface Death {
  readonly tenantId: string;
  readonly nodeId: string;
  readonly containerId: string;
  readonly exitCode: number;
  readonly oomKilled: boolean;
  /** Distinguishes two deaths of one container (for de-duplication). */
  readonly when: string;
}

export interface RunningNode {
  readonly containerId: string;
  readonly node: { tenantId: string; poolId: string; nodeId: string };
}

export interface Manager {
  readonly commands: CommandHandlers;
  /**
   * A death this manager did not cause: publishes node.evt.died and marks the node in error.
   * Returns false when it is not a live node's current container (another system's, an old one).
   */
  nodeDied(death: Death): Promise<boolean>;
  /** One attempt, in the pool's turn, to run the node again; 'skipped' when it should not run. */
  heal(tenantId: string, nodeId: string, action: 'restart' | 'replace'): Promise<'healed' | 'skipped'>;
  /** The node whose current container this is, if it is one of ours. */
  ownerOf(tenantId: string, nodeId: string, containerId: string): Promise<Node | undefined>;
  /**
   * Compares every pool with the containers Docker has (deaths missed while not watching
   * become node.evt.died) and brings each to its desired state. Returns the running nodes.
   */
  reconcileAll(): Promise<RunningNode[]>;
}

/**
 * An order that cannot be carried out as asked (unknown pool, taken name, Docker refused).
 * It ends as `order.evt.failed` and the command is acked: a retry would fail the same way.
 * Anything else a handler throws (database or NATS down) is retried by the bus.
 */
export class OrderFailure extends Error {
  override name = 'OrderFailure';
}

export type CommandHandlers = ConsumerHandlers<'exitNodeManagerCommands'>;
type NodeVerb = 'start' | 'stop' | 'restart' | 'sleep' | 'wake';

const DEFAULT_DRAIN_SEC = 30;
const DRAIN_POLL_MS = 250;
// The load balancer answers from memory; a slow answer is as good as none.
const TRAFFIC_TIMEOUT_MS = 500;

const now = () => new Date().toISOString();
// Field by field: jsonb hands objects back with their keys reordered.
const samePorts = (a: readonly PublishedPort[], b: readonly PublishedPort[]) =>
  a.length === b.length &&
  a.every((p, i) => {
    const q = b[i]!;
    return p.name === q.name && p.containerPort === q.containerPort && p.hostIp === q.hostIp && p.hostPort === q.hostPort;
  });

/**
 * Runs work for one key at a time. Two commands for the same pool (a scale arriving while
 * the create is still starting containers) would otherwise both find no container for a node
 * and both create one.
 */
function keyedSerial() {
  const tails = new Map<string, Promise<void>>();
  return async <T>(key: string, fn: () => Promise<T>): Promise<T> => {
    const previous = tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const tail = previous.then(() => new Promise<void>((resolve) => (release = resolve)));
    tails.set(key, tail);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (tails.get(key) === tail) tails.delete(key);
    }
  };
}

function nodeAttributes(node: Node): Attributes {
  return { 'switchyard.tenant.id': node.tenant_id, 'switchyard.pool.id': node.pool_id, 'switchyard.node.id': node.id };
}

/** The exit pool node.cmd.add puts a country's nodes in. */
export function addedPoolSpec(country: string, network: NetworkMode): PoolSpec {
  return {
    name: `exit-${country.toLowerCase()}`,
    kind: 'exit',
    country: country.toUpperCase(),
    nodes: { min: 0, max: 1 },
    ...(network === 'host' ? { network } : {}),
  };
}

/** One handler per subject of CONSUMERS.exitNodeManagerCommands, and the self-healing operations. */
export function createManager(deps: HandlerDeps): Manager {
  const { db, docker, bus, log, config } = deps;
  const serial = keyedSerial();

  async function setHot(node: Node, status: NodeStatus) {
    await deps.hotState({ tenantId: node.tenant_id, poolId: node.pool_id, nodeId: node.id, status });
  }

  /** Ends an order as failed when `fn` hits an OrderFailure or a Docker refusal. */
  async function asOrder(p: { orderId?: string | undefined; tenantId: string }, what: string, fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      if (!(err instanceof OrderFailure || err instanceof DockerOpError)) {
        log.warn({ orderId: p.orderId, tenantId: p.tenantId, err: err instanceof Error ? err.message : String(err) }, `${what} interrupted; the command will be redelivered`);
        throw err;
      }
      log.warn({ orderId: p.orderId, tenantId: p.tenantId, reason: err.message }, `${what} failed`);
      if (p.orderId) {
        await bus.publish(
          'order.evt.failed',
          { orderId: p.orderId, tenantId: p.tenantId, reason: err.message },
          { msgId: `order.evt.failed:${p.orderId}` },
        );
      }
    }
  }

  async function progress(orderId: string | undefined, tenantId: string, message: string) {
    if (!orderId) return;
    await bus.publish('order.evt.progress', { orderId, tenantId, message }, { msgId: `order.evt.progress:${orderId}` });
  }

  async function fulfil(orderId: string | undefined, tenantId: string, result: { poolId?: string; nodeIds?: string[] }) {
    if (!orderId) return;
    await bus.publish('order.evt.fulfilled', { orderId, tenantId, result }, { msgId: `order.evt.fulfilled:${orderId}` });
  }

  async function announcePool(pool: Pool) {
    await bus.publish(
      'pool.evt.changed',
      { tenantId: pool.tenant_id, poolId: pool.id, name: pool.name, spec: pool.spec, at: pool.updated_at.toISOString() },
      { msgId: `pool.evt.changed:${pool.id}:${pool.updated_at.getTime()}` },
    );
  }

  /** Marks the node failed, so the failure is visible on the node and not only on the order. */
  async function guardNode<T>(node: Node, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof DockerOpError)) throw err;
      await repo.updateNode(db, node.tenant_id, node.id, { status: 'error' });
      await setHot(node, 'error');
      throw new OrderFailure(`node ${node.name}: ${err.message}`, { cause: err });
    }
  }

  /** The node's one container; extra ones (left by an older bug or a manual `docker run`) go. */
  async function nodeContainer(node: Node): Promise<ContainerRef | undefined> {
    const found = await docker.findContainers({ [Labels.tenant]: node.tenant_id, [Labels.node]: node.id });
    if (found.length <= 1) return found[0];
    const keep = found.find((c) => c.id === node.container_id) ?? found.find((c) => c.running) ?? found[0]!;
    for (const c of found) if (c !== keep) await docker.remove(c.id, nodeAttributes(node));
    return keep;
  }

  /**
   * Chooses a node's host ports once; they are reused for every container it gets. A node
   * already published on a port (its container predates pinned ports) keeps that one. A port
   * another live node holds is never chosen, even though nothing listens on it while that node
   * sleeps: it is still that node's, and the activator catches it. One choice at a time, so
   * two nodes cannot be handed the same free port.
   */
  async function withHostPorts(pool: Pool, node: Node): Promise<Node> {
    const missing = portsToAllocate(pool.spec, node.host_ports);
    if (missing.length === 0) return node;
    return serial('host-ports', async () => {
      const taken = await repo.hostPortsInUse(db);
      const hostPorts = { ...node.host_ports };
      for (const name of missing) {
        const port = node.ports.find((p) => p.name === name)?.hostPort ?? (await unheldPort(taken));
        hostPorts[name] = port;
        taken.add(port);
      }
      await repo.setHostPorts(db, node.tenant_id, node.id, hostPorts);
      return { ...node, host_ports: hostPorts };
    });
  }

  async function unheldPort(taken: ReadonlySet<number>): Promise<number> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const port = await deps.pickPort(config.publishHost);
      if (!taken.has(port)) return port;
    }
    throw new OrderFailure(`no free port on ${config.publishHost} that another node does not hold`);
  }

  async function createContainer(pool: Pool, node: Node, ensureImage: () => Promise<void>): Promise<ContainerRef> {
    await ensureImage();
    const options = containerSpec(
      { tenantId: pool.tenant_id, id: pool.id, spec: pool.spec },
      { id: node.id, ordinal: node.ordinal, server: node.server, hostPorts: node.host_ports },
      config,
    );
    try {
      const id = await docker.create(options, nodeAttributes(node));
      return { id, running: false, labels: options.Labels ?? {} };
    } catch (err) {
      if (!(err instanceof DockerOpError && err.conflict)) throw err;
      // The name is taken: by this node's own container if a create raced ours, else by a
      // container this manager does not own, which only a person should remove.
      const mine = await nodeContainer(node);
      if (mine) return mine;
      throw new DockerOpError(
        'container.create',
        `the container name "${options.name}" is taken by a container that is not node ${node.name}'s; remove it (docker rm) and retry`,
        { cause: err },
      );
    }
  }

  /**
   * Makes the node's container exist and run, and records what Docker reports. Safe to repeat:
   * a container made by a crashed earlier attempt is found by its node label and reused, and
   * events use ids derived from Docker's own facts, so a repeat is dropped by JetStream.
   */
  async function ensureRunning(pool: Pool, given: Node, ensureImage: () => Promise<void>): Promise<void> {
    await guardNode(given, async () => {
      const node = await withHostPorts(pool, given);
      const attrs = nodeAttributes(node);
      const container = (await nodeContainer(node)) ?? (await createContainer(pool, node, ensureImage));
      if (node.container_id !== container.id) {
        // Published before the row is written: a crash in between repeats the event (deduplicated),
        // where the other order would lose it.
        await bus.publish(
          'node.evt.created',
          {
            tenantId: node.tenant_id,
            poolId: node.pool_id,
            nodeId: node.id,
            at: now(),
            name: node.name,
            containerId: container.id,
            kind: pool.spec.kind,
            ...(pool.spec.country ? { country: pool.spec.country.toUpperCase() } : {}),
            ...(pool.spec.healthCheck ? { healthCheck: pool.spec.healthCheck } : {}),
          },
          { msgId: `node.evt.created:${container.id}` },
        );
        await repo.updateNode(db, node.tenant_id, node.id, { containerId: container.id, status: 'starting' });
        log.info({ nodeId: node.id, containerId: container.id }, `container of node ${node.name} created`);
      }
      // The list can lag behind a container that just died (Docker updates it after tearing
      // down the network), so "running" is believed only once inspect agrees.
      const inspected = container.running ? await docker.inspect(container.id, attrs) : undefined;
      const { state, startMs } = inspected?.running ? { state: inspected, startMs: 0 } : await docker.start(container.id, attrs);
      const ports = publishedPorts(pool.spec, state.ports, config.publishHost, node.host_ports);
      const unchanged =
        node.status === 'running' &&
        node.container_id === container.id &&
        node.started_at?.getTime() === state.startedAt?.getTime() &&
        samePorts(node.ports, ports);
      if (unchanged) return;
      await bus.publish(
        'node.evt.started',
        { tenantId: node.tenant_id, poolId: node.pool_id, nodeId: node.id, at: now(), containerId: container.id, ports, startMs, ...(state.healthcheck ? { healthcheck: true } : {}) },
        { msgId: `node.evt.started:${container.id}:${state.startedAt?.toISOString() ?? 'unknown'}` },
      );
      await repo.updateNode(db, node.tenant_id, node.id, {
        status: 'running',
        containerId: container.id,
        ports,
        startedAt: state.startedAt,
      });
      await setHot(node, 'running');
      log.info({ nodeId: node.id, containerId: container.id, ports, startMs }, `node ${node.name} running`);
    });
  }

  async function stopNode(node: Node, status: 'stopped' | 'sleeping', reason: string): Promise<void> {
    await guardNode(node, async () => {
      const attrs = nodeAttributes(node);
      const container = await nodeContainer(node);
      if (container?.running) await docker.stop(container.id, attrs);
      if (node.status === status && !container?.running) return;
      const containerId = container?.id ?? node.container_id ?? '';
      const finishedAt = container ? (await docker.inspect(container.id, attrs)).finishedAt : null;
      await bus.publish(
        'node.evt.stopped',
        { tenantId: node.tenant_id, poolId: node.pool_id, nodeId: node.id, at: now(), containerId, reason },
        { msgId: `node.evt.stopped:${containerId}:${finishedAt?.toISOString() ?? node.id}` },
      );
      // A stopped node is reached nowhere. A sleeping one keeps its ports in view: they are
      // pinned, so it wakes on them, and the activator catches them meanwhile.
      await repo.updateNode(db, node.tenant_id, node.id, { status, ...(status === 'stopped' ? { ports: [] } : {}) });
      await setHot(node, status);
      log.info({ nodeId: node.id, containerId, reason }, `node ${node.name} ${status}`);
    });
  }

  async function removeNode(node: Node, reason: string): Promise<void> {
    await guardNode(node, async () => {
      const attrs = nodeAttributes(node);
      const found = await docker.findContainers({ [Labels.tenant]: node.tenant_id, [Labels.node]: node.id });
      for (const c of found) {
        // Stop first so the process gets its grace period; remove alone would SIGKILL it.
        if (c.running) await docker.stop(c.id, attrs);
        await docker.remove(c.id, attrs);
      }
      await bus.publish(
        'node.evt.removed',
        { tenantId: node.tenant_id, poolId: node.pool_id, nodeId: node.id, at: now(), reason },
        { msgId: `node.evt.removed:${node.id}` },
      );
      await repo.updateNode(db, node.tenant_id, node.id, { status: 'removed', ports: [] });
      await setHot(node, 'removed');
      await deps.stats.forget(node.id);
      log.info({ nodeId: node.id, reason }, `node ${node.name} removed`);
    });
  }

  /**
   * Brings the pool to its desired size: ordinals 1..desired run, higher ones are removed,
   * containers of the pool that belong to no live node are removed. Nodes stopped or put to
   * sleep on purpose stay as they are: only node.cmd.start/wake runs them again.
   * Returns the ids of the nodes 1..desired.
   */
  async function reconcile(pool: Pool): Promise<string[]> {
    const image = imageOf(pool.spec, config);
    let imageChecked: Promise<void> | undefined;
    const ensureImage = () => (imageChecked ??= docker.ensureImage(image));

    const nodeIds: string[] = [];
    for (let ordinal = 1; ordinal <= pool.desired_nodes; ordinal++) {
      const node = await repo.ensureNode(db, {
        tenantId: pool.tenant_id,
        poolId: pool.id,
        ordinal,
        name: nodeName(pool.name, ordinal),
      });
      nodeIds.push(node.id);
      if (node.status === 'stopped' || node.status === 'sleeping') continue;
      await ensureRunning(pool, node, ensureImage);
    }

    const surplus = (await repo.poolNodes(db, pool.tenant_id, pool.id)).filter((n) => n.ordinal > pool.desired_nodes && n.status !== 'removed');
    await drainAll(pool, surplus, 'scaled down');
    for (const node of surplus) await removeNode(node, 'scaled down');
    await removeStrays(pool, new Set(nodeIds));
    return nodeIds;
  }

  async function activeConnections(node: Node): Promise<number> {
    try {
      const reply = await bus.request('lb.req.traffic', { tenantId: node.tenant_id, nodeIds: [node.id] }, { timeoutMs: TRAFFIC_TIMEOUT_MS });
      return reply.nodes.find((n) => n.nodeId === node.id)?.activeConnections ?? 0;
    } catch {
      // No load balancer (or none answering): nothing routes to the node, so nothing to wait for.
      return 0;
    }
  }

  /**
   * Announces that the nodes take no new connections, then waits until the load balancer
   * reports none open on them, or the pool's drainSec passes.
   */
  async function drainAll(pool: Pool, nodes: readonly Node[], reason: string): Promise<void> {
    const running = nodes.filter((n) => n.status === 'running');
    if (running.length === 0) return;
    for (const node of running) {
      await bus.publish(
        'node.evt.draining',
        { tenantId: node.tenant_id, poolId: node.pool_id, nodeId: node.id, at: now(), reason },
        { msgId: `node.evt.draining:${node.id}` },
      );
    }
    const deadline = Date.now() + (pool.spec.drainSec ?? DEFAULT_DRAIN_SEC) * 1000;
    await Promise.all(
      running.map(async (node) => {
        while ((await activeConnections(node)) > 0 && Date.now() < deadline) await sleep(Math.min(DRAIN_POLL_MS, Math.max(0, deadline - Date.now())));
      }),
    );
  }

  async function removeStrays(pool: Pool, liveNodeIds: ReadonlySet<string>): Promise<void> {
    const containers = await docker.findContainers({ [Labels.tenant]: pool.tenant_id, [Labels.pool]: pool.id });
    for (const c of containers) {
      const nodeId = c.labels[Labels.node];
      if (nodeId && liveNodeIds.has(nodeId)) continue;
      log.warn({ poolId: pool.id, containerId: c.id, nodeId }, 'removing a container of the pool that belongs to no live node');
      await docker.remove(c.id, { 'switchyard.pool.id': pool.id });
    }
  }

  async function livePool(tenantId: string, poolId: string): Promise<Pool> {
    const pool = await repo.findPool(db, tenantId, poolId);
    if (!pool || pool.status === 'deleted') throw new OrderFailure(`unknown pool ${poolId}`);
    return pool;
  }

  async function createPool(p: Payload<'pool.cmd.create'>): Promise<void> {
    await progress(p.orderId, p.tenantId, `creating pool ${p.spec.name} with ${p.spec.nodes.min} node(s)`);
    const issues = poolSpecIssues(p.spec);
    if (issues.length) throw new OrderFailure(`invalid pool spec: ${formatIssues(issues)}`);
    const outcome = await repo.insertPool(db, { tenantId: p.tenantId, poolId: p.poolId, spec: p.spec, desiredNodes: p.spec.nodes.min });
    if (outcome === 'name_taken') throw new OrderFailure(`a pool named "${p.spec.name}" already exists`);
    if (outcome === 'public_port_taken') throw new OrderFailure(`publicPort ${p.spec.publicPort} is taken by another pool`);
    const pool = await repo.findPool(db, p.tenantId, p.poolId);
    if (!pool) throw new Error(`pool ${p.poolId} vanished right after it was stored`);
    if (pool.status === 'deleted') throw new OrderFailure(`pool ${p.spec.name} was deleted before it was created`);
    const nodeIds = await reconcileAndAnnounce(pool);
    await fulfil(p.orderId, p.tenantId, { poolId: pool.id, nodeIds });
  }

  /** The pool exists even when a node failed, so its subscribers hear of it either way. */
  async function reconcileAndAnnounce(pool: Pool): Promise<string[]> {
    let nodeIds: string[];
    try {
      nodeIds = await reconcile(pool);
    } catch (err) {
      if (err instanceof OrderFailure) await announcePool(pool);
      throw err;
    }
    await announcePool(pool);
    return nodeIds;
  }

  async function scalePool(p: Payload<'pool.cmd.scale'>): Promise<void> {
    let pool = await livePool(p.tenantId, p.poolId);
    if (p.nodes.min > p.nodes.max) throw new OrderFailure(`nodes.min (${p.nodes.min}) must not exceed nodes.max (${p.nodes.max})`);
    await progress(p.orderId, p.tenantId, `scaling pool ${pool.name} to ${p.nodes.min} node(s)`);
    const sameSize = pool.desired_nodes === p.nodes.min && pool.spec.nodes.min === p.nodes.min && pool.spec.nodes.max === p.nodes.max;
    if (!sameSize) pool = await repo.updatePoolSize(db, pool, { ...pool.spec, nodes: p.nodes }, p.nodes.min);
    const nodeIds = await reconcileAndAnnounce(pool);
    await fulfil(p.orderId, p.tenantId, { poolId: pool.id, nodeIds });
  }

  async function deletePool(p: Payload<'pool.cmd.delete'>): Promise<void> {
    // A deleted pool is accepted so a redelivered delete finishes what a crash interrupted.
    const pool = await repo.findPool(db, p.tenantId, p.poolId);
    if (!pool) throw new OrderFailure(`unknown pool ${p.poolId}`);
    await progress(p.orderId, p.tenantId, `deleting pool ${pool.name}`);
    const live = (await repo.poolNodes(db, pool.tenant_id, pool.id)).filter((n) => n.status !== 'removed');
    await drainAll(pool, live, 'pool deleted');
    for (const node of live) await removeNode(node, 'pool deleted');
    await removeStrays(pool, new Set());
    await repo.markPoolDeleted(db, pool.tenant_id, pool.id);
    await bus.publish(
      'pool.evt.deleted',
      { tenantId: pool.tenant_id, poolId: pool.id, at: now() },
      { msgId: `pool.evt.deleted:${pool.id}` },
    );
    await fulfil(p.orderId, p.tenantId, { poolId: pool.id });
  }

  async function nodeCommand(verb: NodeVerb, p: Payload<'node.cmd.start'>): Promise<void> {
    const found = await repo.findNode(db, p.tenantId, p.nodeId);
    if (!found || found.status === 'removed') throw new OrderFailure(`unknown node ${p.nodeId}`);
    await serial(found.pool_id, async () => {
      // Read again under the pool's turn: the command before it may have changed the node.
      const node = await repo.findNode(db, p.tenantId, p.nodeId);
      if (!node || node.status === 'removed') throw new OrderFailure(`unknown node ${p.nodeId}`);
      const pool = await repo.findPool(db, node.tenant_id, node.pool_id);
      if (!pool) throw new Error(`node ${node.id} has no pool row`);
      await progress(p.orderId, p.tenantId, `${verb} node ${node.name}`);
      const ensureImage = () => docker.ensureImage(imageOf(pool.spec, config));
      switch (verb) {
        case 'start':
          await ensureRunning(pool, node, ensureImage);
          break;
        case 'wake':
          // The stopped container would start from its image id even with the tag gone; a wake
          // fails instead, naming the image, and the node stays asleep (and catchable).
          await ensureImage().catch((err: unknown) => {
            throw err instanceof DockerOpError ? new OrderFailure(`cannot wake node ${node.name}: ${err.message}`, { cause: err }) : err;
          });
          await ensureRunning(pool, node, ensureImage);
          break;
        case 'stop':
          await stopNode(node, 'stopped', p.reason ?? 'stop');
          break;
        case 'sleep':
          await stopNode(node, 'sleeping', 'sleep');
          break;
        case 'restart': {
          await stopNode(node, 'stopped', 'restart');
          const stopped = await repo.findNode(db, node.tenant_id, node.id);
          await ensureRunning(pool, stopped ?? node, ensureImage);
          break;
        }
      }
      await fulfil(p.orderId, p.tenantId, { poolId: node.pool_id, nodeIds: [node.id] });
    });
  }

  const nodeHandler = (verb: NodeVerb) => (p: Payload<'node.cmd.start'>) => asOrder(p, `node.cmd.${verb}`, () => nodeCommand(verb, p));

  /** The tenant's exit pool of the country, made with defaults when there is none. */
  async function exitPoolFor(tenantId: string, country: string): Promise<Pool> {
    const spec = addedPoolSpec(country, config.addedPoolNetwork);
    for (let attempt = 0; attempt < 3; attempt++) {
      const found = await repo.findLivePoolByName(db, tenantId, spec.name);
      if (found) {
        if (found.spec.kind !== 'exit' || found.spec.country?.toUpperCase() !== spec.country) {
          throw new OrderFailure(`the pool named "${spec.name}" is not the exit pool of ${spec.country}`);
        }
        return found;
      }
      // 'name_taken': another manager process made it in between; find it next time round.
      await repo.insertPool(db, { tenantId, poolId: randomUUID(), spec, desiredNodes: 0 });
    }
    throw new Error(`could not find or create pool ${spec.name}`);
  }

  async function addNode(p: Payload<'node.cmd.add'>): Promise<void> {
    const country = p.country.toUpperCase();
    const known = await repo.findNode(db, p.tenantId, p.nodeId);
    if (known?.status === 'removed') throw new OrderFailure(`node ${p.nodeId} was removed; add a node with a new id`);
    const pool = known
      ? await livePool(p.tenantId, known.pool_id)
      : await serial(`add:${p.tenantId}:${country}`, () => exitPoolFor(p.tenantId, country));
    await serial(pool.id, async () => {
      let current = await livePool(pool.tenant_id, pool.id);
      // Read again under the pool's turn: a redelivered add finds the node it made before.
      let node = await repo.findNode(db, p.tenantId, p.nodeId);
      if (!node) {
        node = await repo.appendNode(db, current, { tenantId: p.tenantId, nodeId: p.nodeId, server: p.server ?? null });
        current = await livePool(pool.tenant_id, pool.id);
        await announcePool(current);
      }
      if (node.status === 'removed') throw new OrderFailure(`node ${p.nodeId} was removed; add a node with a new id`);
      await progress(p.orderId, p.tenantId, `starting node ${node.name} in ${country}`);
      const image = imageOf(current.spec, config);
      await ensureRunning(current, node, () => docker.ensureImage(image));
    });
    await fulfil(p.orderId, p.tenantId, { poolId: pool.id, nodeIds: [p.nodeId] });
  }

  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

  async function ownerOf(tenantId: string, nodeId: string, containerId: string): Promise<Node | undefined> {
    // Labels of containers another Switchyard on this engine made can say anything.
    if (!UUID.test(tenantId) || !UUID.test(nodeId)) return undefined;
    const node = await repo.findNode(db, tenantId, nodeId);
    if (!node || node.status === 'removed' || node.container_id !== containerId) return undefined;
    return node;
  }

  async function nodeDied(d: Death): Promise<boolean> {
    const node = await ownerOf(d.tenantId, d.nodeId, d.containerId);
    // A node being created or started is in the hands of the command doing it.
    if (!node || (node.status !== 'running' && node.status !== 'error')) return false;
    try {
      await bus.publish(
        'node.evt.died',
        { tenantId: node.tenant_id, poolId: node.pool_id, nodeId: node.id, at: now(), containerId: d.containerId, exitCode: d.exitCode, oomKilled: d.oomKilled },
        { msgId: `node.evt.died:${d.containerId}:${d.when}` },
      );
    } catch (err) {
      // Healing must not wait for NATS: the node.evt.started that follows tells the same story.
      log.warn({ nodeId: node.id, err: (err as Error).message }, 'could not publish node.evt.died');
    }
    await setHot(node, 'error');
    await repo.updateNode(db, node.tenant_id, node.id, { status: 'error', ports: [] });
    log.warn({ nodeId: node.id, containerId: d.containerId, exitCode: d.exitCode, oomKilled: d.oomKilled }, `node ${node.name} died`);
    return true;
  }

  async function heal(tenantId: string, nodeId: string, action: 'restart' | 'replace'): Promise<'healed' | 'skipped'> {
    const found = await repo.findNode(db, tenantId, nodeId);
    if (!found) return 'skipped';
    return serial(found.pool_id, async () => {
      let node = await repo.findNode(db, tenantId, nodeId);
      // Stopped, put to sleep or removed since it died: someone decided it should not run.
      if (!node || (node.status !== 'error' && node.status !== 'running')) return 'skipped';
      const pool = await repo.findPool(db, tenantId, node.pool_id);
      if (!pool || pool.status === 'deleted' || node.ordinal > pool.desired_nodes) return 'skipped';
      if (action === 'replace') {
        const attrs = nodeAttributes(node);
        for (const c of await docker.findContainers({ [Labels.tenant]: tenantId, [Labels.node]: nodeId })) await docker.remove(c.id, attrs);
        await repo.updateNode(db, tenantId, nodeId, { containerId: null });
        node = { ...node, container_id: null };
        log.warn({ nodeId, containerId: found.container_id }, `replacing the container of node ${node.name}`);
      }
      const image = imageOf(pool.spec, config);
      await ensureRunning(pool, node, () => docker.ensureImage(image));
      return 'healed';
    });
  }

  /** Nodes recorded as running whose container is not: they died while nobody was watching. */
  async function noticeMissedDeaths(pool: Pool): Promise<void> {
    const containers = await docker.findContainers({ [Labels.tenant]: pool.tenant_id, [Labels.pool]: pool.id });
    for (const node of await repo.poolNodes(db, pool.tenant_id, pool.id)) {
      const containerId = node.container_id;
      if (node.status !== 'running' || !containerId || deps.isExpected(containerId)) continue;
      const container = containers.find((c) => c.id === containerId);
      if (container?.running) continue;
      const state = container ? await docker.inspect(containerId).catch(() => null) : null;
      await nodeDied({
        tenantId: node.tenant_id,
        nodeId: node.id,
        containerId,
        exitCode: state?.exitCode ?? -1,
        oomKilled: state?.oomKilled ?? false,
        when: state?.finishedAt?.toISOString() ?? 'gone',
      });
    }
  }

  async function reconcileAll(): Promise<RunningNode[]> {
    for (const { tenant_id: tenantId, id: poolId } of await repo.listPools(db)) {
      try {
        await serial(poolId, async () => {
          const pool = await repo.findPool(db, tenantId, poolId);
          if (!pool || pool.status === 'deleted') return;
          await noticeMissedDeaths(pool);
          await reconcile(pool);
        });
      } catch (err) {
        if (!(err instanceof OrderFailure || err instanceof DockerOpError)) throw err;
        log.warn({ poolId, err: err.message }, 'could not reconcile a pool; the next reconciliation tries again');
      }
    }
    const nodes = await repo.listNodes(db, {});
    return nodes
      .filter((n) => n.status === 'running' && n.container_id)
      .map((n) => ({ containerId: n.container_id!, node: { tenantId: n.tenant_id, poolId: n.pool_id, nodeId: n.id } }));
  }

  return {
    commands: {
      'node.cmd.add': (p) => asOrder(p, 'node.cmd.add', () => addNode(p)),
      'pool.cmd.create': (p) => asOrder(p, 'pool.cmd.create', () => serial(p.poolId, () => createPool(p))),
      'pool.cmd.scale': (p) => asOrder(p, 'pool.cmd.scale', () => serial(p.poolId, () => scalePool(p))),
      'pool.cmd.delete': (p) => asOrder(p, 'pool.cmd.delete', () => serial(p.poolId, () => deletePool(p))),
      'node.cmd.start': nodeHandler('start'),
      'node.cmd.stop': nodeHandler('stop'),
      'node.cmd.restart': nodeHandler('restart'),
      'node.cmd.sleep': nodeHandler('sleep'),
      'node.cmd.wake': nodeHandler('wake'),
    },
    nodeDied,
    heal,
    ownerOf,
    reconcileAll,
  };
}
