import type { Attributes } from '@opentelemetry/api';
import type { Bus, ConsumerHandlers } from '@switchyard/bus';
import {
  formatIssues,
  poolSpecIssues,
  type NodeStatus,
  type NodeView,
  type Payload,
  type PublishedPort,
  type ReplyOf,
} from '@switchyard/contracts';
import { Labels } from '@switchyard/docker';
import { containerSpec, imageOf, nodeName, publishedPorts, type SpecConfig } from './container-spec.js';
import { DockerOpError, type ContainerRef, type DockerOps } from './docker-ops.js';
import * as repo from './repository.js';
import type { Db } from './repository.js';
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

export interface HandlerDeps {
  readonly db: Db;
  readonly docker: DockerOps;
  readonly bus: Pick<Bus, 'publish'>;
  readonly hotState: HotState;
  readonly log: Log;
  readonly config: SpecConfig;
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

function toNodeView(node: Node): NodeView {
  return {
    tenantId: node.tenant_id,
    poolId: node.pool_id,
    nodeId: node.id,
    name: node.name,
    status: node.status,
    containerId: node.container_id,
    ports: node.ports,
    startedAt: node.started_at ? node.started_at.toISOString() : null,
  };
}

/** `node.req.list`: the tenant's live nodes, optionally of one pool. */
export async function listNodeViews(db: Db, payload: Payload<'node.req.list'>): Promise<ReplyOf<'node.req.list'>> {
  const nodes = await repo.listNodes(db, payload.tenantId, payload.poolId);
  return { nodes: nodes.map(toNodeView) };
}

/** One handler per subject of CONSUMERS.exitNodeManagerCommands. */
export function createCommandHandlers(deps: HandlerDeps): CommandHandlers {
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

  async function createContainer(pool: Pool, node: Node, ensureImage: () => Promise<void>): Promise<ContainerRef> {
    await ensureImage();
    const options = containerSpec({ tenantId: pool.tenant_id, id: pool.id, spec: pool.spec }, node, config);
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
  async function ensureRunning(pool: Pool, node: Node, ensureImage: () => Promise<void>): Promise<void> {
    await guardNode(node, async () => {
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
      const { state, startMs } = container.running
        ? { state: await docker.inspect(container.id, attrs), startMs: 0 }
        : await docker.start(container.id, attrs);
      const ports = publishedPorts(pool.spec, state.ports, config.publishHost);
      const unchanged =
        node.status === 'running' &&
        node.container_id === container.id &&
        node.started_at?.getTime() === state.startedAt?.getTime() &&
        samePorts(node.ports, ports);
      if (unchanged) return;
      await bus.publish(
        'node.evt.started',
        { tenantId: node.tenant_id, poolId: node.pool_id, nodeId: node.id, at: now(), containerId: container.id, ports, startMs },
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
      // A stopped container publishes no ports; the next start gets new ones.
      await repo.updateNode(db, node.tenant_id, node.id, { status, ports: [] });
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

    for (const node of await repo.poolNodes(db, pool.tenant_id, pool.id)) {
      if (node.ordinal > pool.desired_nodes && node.status !== 'removed') await removeNode(node, 'scaled down');
    }
    await removeStrays(pool, new Set(nodeIds));
    return nodeIds;
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
    for (const node of await repo.poolNodes(db, pool.tenant_id, pool.id)) {
      if (node.status !== 'removed') await removeNode(node, 'pool deleted');
    }
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
        case 'wake':
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

  return {
    'pool.cmd.create': (p) => asOrder(p, 'pool.cmd.create', () => serial(p.poolId, () => createPool(p))),
    'pool.cmd.scale': (p) => asOrder(p, 'pool.cmd.scale', () => serial(p.poolId, () => scalePool(p))),
    'pool.cmd.delete': (p) => asOrder(p, 'pool.cmd.delete', () => serial(p.poolId, () => deletePool(p))),
    'node.cmd.start': nodeHandler('start'),
    'node.cmd.stop': nodeHandler('stop'),
    'node.cmd.restart': nodeHandler('restart'),
    'node.cmd.sleep': nodeHandler('sleep'),
    'node.cmd.wake': nodeHandler('wake'),
  };
}
