import { randomUUID } from 'node:crypto';
import type { ConsumerHandlers } from '@switchyard/bus';
import { formatIssues, MAX_POOL_NODES, poolSpecIssues, type NetworkMode, type Payload, type PoolSpec } from '@switchyard/contracts';
import { Labels } from '@switchyard/docker';
import { OrderFailure, type OrderReporter } from '@switchyard/service-kit';
import { imageOf } from './container-spec.js';
import { DockerOpError } from './docker-ops.js';
import type { Drain } from './drain.js';
import type { Serial } from './keyed-serial.js';
import type { NodeLifecycle } from './node-lifecycle.js';
import type { ManagerDeps } from './ports.js';
import type { Reconciler } from './reconciler.js';
import type { Pool } from './tables.js';
import type { TenantNetworks } from './tenant-networks.js';

/** One handler per subject of CONSUMERS.exitNodeManagerCommands. */
export type CommandHandlers = ConsumerHandlers<'exitNodeManagerCommands'>;
type NodeVerb = 'start' | 'stop' | 'restart' | 'sleep' | 'wake';

export type CommandDeps = Pick<ManagerDeps, 'repo' | 'docker' | 'bus' | 'config'> & {
  readonly serial: Serial;
  readonly orders: OrderReporter;
  readonly lifecycle: NodeLifecycle;
  readonly reconciler: Pick<Reconciler, 'reconcile' | 'removeStrays'>;
  readonly drain: Drain;
  readonly networks: Pick<TenantNetworks, 'release'>;
};

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

/**
 * The orders this service carries out. Each runs as an order (see the kit's OrderReporter): a
 * request that cannot be met ends as order.evt.failed, anything else is redelivered. Work on a
 * pool and its nodes takes the pool's turn.
 */
export function createCommandHandlers(deps: CommandDeps): CommandHandlers {
  const { repo, docker, bus, config, serial, orders, lifecycle, reconciler } = deps;

  async function announcePool(pool: Pool) {
    await bus.publish(
      'pool.evt.changed',
      { tenantId: pool.tenant_id, poolId: pool.id, name: pool.name, spec: pool.spec, at: pool.updated_at.toISOString() },
      { msgId: `pool.evt.changed:${pool.id}:${pool.updated_at.getTime()}` },
    );
  }

  async function livePool(tenantId: string, poolId: string): Promise<Pool> {
    const pool = await repo.findPool(tenantId, poolId);
    if (!pool || pool.status === 'deleted') throw new OrderFailure(`unknown pool ${poolId}`);
    return pool;
  }

  /** The pool exists even when a node failed, so its subscribers hear of it either way. */
  async function reconcileAndAnnounce(pool: Pool): Promise<string[]> {
    let nodeIds: string[];
    try {
      nodeIds = await reconciler.reconcile(pool);
    } catch (err) {
      if (err instanceof OrderFailure) await announcePool(pool);
      throw err;
    }
    await announcePool(pool);
    return nodeIds;
  }

  async function createPool(p: Payload<'pool.cmd.create'>): Promise<void> {
    await orders.progress(p, `creating pool ${p.spec.name} with ${p.spec.nodes.min} node(s)`);
    const issues = poolSpecIssues(p.spec);
    if (issues.length) throw new OrderFailure(`invalid pool spec: ${formatIssues(issues)}`);
    const outcome = await repo.insertPool({ tenantId: p.tenantId, poolId: p.poolId, spec: p.spec, desiredNodes: p.spec.nodes.min });
    if (outcome === 'name_taken') throw new OrderFailure(`a pool named "${p.spec.name}" already exists`);
    if (outcome === 'public_port_taken') throw new OrderFailure(`publicPort ${p.spec.publicPort} is taken by another pool`);
    const pool = await repo.findPool(p.tenantId, p.poolId);
    if (!pool) throw new Error(`pool ${p.poolId} vanished right after it was stored`);
    if (pool.status === 'deleted') throw new OrderFailure(`pool ${p.spec.name} was deleted before it was created`);
    const nodeIds = await reconcileAndAnnounce(pool);
    await orders.fulfil(p, { poolId: pool.id, nodeIds });
  }

  async function scalePool(p: Payload<'pool.cmd.scale'>): Promise<void> {
    let pool = await livePool(p.tenantId, p.poolId);
    if (p.nodes.min > p.nodes.max) throw new OrderFailure(`nodes.min (${p.nodes.min}) must not exceed nodes.max (${p.nodes.max})`);
    await orders.progress(p, `scaling pool ${pool.name} to ${p.nodes.min} node(s)`);
    const sameSize = pool.desired_nodes === p.nodes.min && pool.spec.nodes.min === p.nodes.min && pool.spec.nodes.max === p.nodes.max;
    if (!sameSize) pool = await repo.updatePoolSize(pool, { ...pool.spec, nodes: p.nodes }, p.nodes.min);
    const nodeIds = await reconcileAndAnnounce(pool);
    await orders.fulfil(p, { poolId: pool.id, nodeIds });
  }

  async function deletePool(p: Payload<'pool.cmd.delete'>): Promise<void> {
    // A deleted pool is accepted so a redelivered delete finishes what a crash interrupted.
    const pool = await repo.findPool(p.tenantId, p.poolId);
    if (!pool) throw new OrderFailure(`unknown pool ${p.poolId}`);
    await orders.progress(p, `deleting pool ${pool.name}`);
    const live = (await repo.poolNodes(pool.tenant_id, pool.id)).filter((n) => n.status !== 'removed');
    await deps.drain(pool, live, 'pool deleted');
    for (const node of live) await lifecycle.removeNode(node, 'pool deleted');
    await reconciler.removeStrays(pool, new Set());
    if (!p.keepVolumes) await removeVolumes(pool);
    await repo.markPoolDeleted(pool.tenant_id, pool.id);
    await deps.networks.release(pool.tenant_id);
    await bus.publish('pool.evt.deleted', { tenantId: pool.tenant_id, poolId: pool.id, at: new Date().toISOString() }, { msgId: `pool.evt.deleted:${pool.id}` });
    await orders.fulfil(p, { poolId: pool.id });
  }

  /** Every node's named volumes, old names included: they carry the pool's label. */
  async function removeVolumes(pool: Pool): Promise<void> {
    for (const name of await docker.findVolumes({ [Labels.tenant]: pool.tenant_id, [Labels.pool]: pool.id })) await docker.removeVolume(name);
  }

  async function nodeCommand(verb: NodeVerb, p: Payload<'node.cmd.start'>): Promise<void> {
    const found = await repo.findNode(p.tenantId, p.nodeId);
    if (!found || found.status === 'removed') throw new OrderFailure(`unknown node ${p.nodeId}`);
    await serial(found.pool_id, async () => {
      // Read again under the pool's turn: the command before it may have changed the node.
      const node = await repo.findNode(p.tenantId, p.nodeId);
      if (!node || node.status === 'removed') throw new OrderFailure(`unknown node ${p.nodeId}`);
      const pool = await repo.findPool(node.tenant_id, node.pool_id);
      if (!pool) throw new Error(`node ${node.id} has no pool row`);
      await orders.progress(p, `${verb} node ${node.name}`);
      const ensureImage = () => docker.ensureImage(imageOf(pool.spec, config));
      switch (verb) {
        case 'start':
          await lifecycle.ensureRunning(pool, node, ensureImage);
          break;
        case 'wake':
          // The stopped container would start from its image id even with the tag gone; a wake
          // fails instead, naming the image, and the node stays asleep (and catchable).
          await ensureImage().catch((err: unknown) => {
            throw err instanceof DockerOpError ? new OrderFailure(`cannot wake node ${node.name}: ${err.message}`, { cause: err }) : err;
          });
          await lifecycle.ensureRunning(pool, node, ensureImage);
          break;
        case 'stop':
          await lifecycle.stopNode(node, 'stopped', p.reason ?? 'stop');
          break;
        case 'sleep':
          await lifecycle.stopNode(node, 'sleeping', 'sleep');
          break;
        case 'restart': {
          await lifecycle.stopNode(node, 'stopped', 'restart');
          const stopped = await repo.findNode(node.tenant_id, node.id);
          await lifecycle.ensureRunning(pool, stopped ?? node, ensureImage);
          break;
        }
      }
      await orders.fulfil(p, { poolId: node.pool_id, nodeIds: [node.id] });
    });
  }

  /** The tenant's exit pool of the country, made with defaults when there is none. */
  async function exitPoolFor(tenantId: string, country: string): Promise<Pool> {
    const spec = addedPoolSpec(country, config.addedPoolNetwork);
    for (let attempt = 0; attempt < 3; attempt++) {
      const found = await repo.findLivePoolByName(tenantId, spec.name);
      if (found) {
        if (found.spec.kind !== 'exit' || found.spec.country?.toUpperCase() !== spec.country) {
          throw new OrderFailure(`the pool named "${spec.name}" is not the exit pool of ${spec.country}`);
        }
        return found;
      }
      // 'name_taken': another manager process made it in between; find it next time round.
      await repo.insertPool({ tenantId, poolId: randomUUID(), spec, desiredNodes: 0 });
    }
    throw new Error(`could not find or create pool ${spec.name}`);
  }

  async function addNode(p: Payload<'node.cmd.add'>): Promise<void> {
    const country = p.country.toUpperCase();
    const known = await repo.findNode(p.tenantId, p.nodeId);
    if (known?.status === 'removed') throw new OrderFailure(`node ${p.nodeId} was removed; add a node with a new id`);
    const pool = known ? await livePool(p.tenantId, known.pool_id) : await serial(`add:${p.tenantId}:${country}`, () => exitPoolFor(p.tenantId, country));
    await serial(pool.id, async () => {
      let current = await livePool(pool.tenant_id, pool.id);
      // Read again under the pool's turn: a redelivered add finds the node it made before.
      let node = await repo.findNode(p.tenantId, p.nodeId);
      if (!node) {
        // Past the maximum the stored spec would break the snapshot schema, and with it every
        // service's rebuild for every tenant.
        if (current.desired_nodes >= MAX_POOL_NODES) throw new OrderFailure(`pool ${current.name} has ${current.desired_nodes} nodes, the most a pool may have`);
        node = await repo.appendNode(current, { tenantId: p.tenantId, nodeId: p.nodeId, server: p.server ?? null });
        current = await livePool(pool.tenant_id, pool.id);
        await announcePool(current);
      }
      if (node.status === 'removed') throw new OrderFailure(`node ${p.nodeId} was removed; add a node with a new id`);
      await orders.progress(p, `starting node ${node.name} in ${country}`);
      const image = imageOf(current.spec, config);
      await lifecycle.ensureRunning(current, node, () => docker.ensureImage(image));
    });
    await orders.fulfil(p, { poolId: pool.id, nodeIds: [p.nodeId] });
  }

  const nodeHandler = (verb: NodeVerb) => (p: Payload<'node.cmd.start'>) => orders.run(p, `node.cmd.${verb}`, () => nodeCommand(verb, p));

  return {
    'node.cmd.add': (p) => orders.run(p, 'node.cmd.add', () => addNode(p)),
    'pool.cmd.create': (p) => orders.run(p, 'pool.cmd.create', () => serial(p.poolId, () => createPool(p))),
    'pool.cmd.scale': (p) => orders.run(p, 'pool.cmd.scale', () => serial(p.poolId, () => scalePool(p))),
    'pool.cmd.delete': (p) => orders.run(p, 'pool.cmd.delete', () => serial(p.poolId, () => deletePool(p))),
    'node.cmd.start': nodeHandler('start'),
    'node.cmd.stop': nodeHandler('stop'),
    'node.cmd.restart': nodeHandler('restart'),
    'node.cmd.sleep': nodeHandler('sleep'),
    'node.cmd.wake': nodeHandler('wake'),
  };
}
