import { Labels } from '@switchyard/docker';
import { OrderFailure, type OrderRef } from '@switchyard/service-kit';
import { imageOf, nodeName } from './container-spec.js';
import { DockerOpError } from './docker-ops.js';
import type { Serial } from './keyed-serial.js';
import type { EnsureImage, NodeLifecycle } from './node-lifecycle.js';
import type { PoolDrains } from './pool-drains.js';
import type { Death, ManagerDeps, RunningNode } from './ports.js';
import type { Pool } from './tables.js';

export interface Reconciler {
  /**
   * Brings the pool to its desired size: ordinals 1..desired run, higher ones are drained and
   * removed in the background (see pool-drains.ts; the order, if given, is fulfilled when that
   * ends), containers of the pool that belong to no live node are removed. Nodes stopped or
   * put to sleep on purpose stay as they are: only node.cmd.start/wake runs them again.
   * Returns the ids of the nodes 1..desired, and whether a drain was begun for the rest.
   */
  reconcile(pool: Pool, order?: OrderRef): Promise<{ nodeIds: string[]; draining: boolean }>;
  /** Removes the pool's containers whose node is not among these. */
  removeStrays(pool: Pool, liveNodeIds: ReadonlySet<string>): Promise<void>;
  /**
   * Compares every pool with the containers Docker has (deaths missed while not watching
   * become node.evt.died) and brings each to its desired state. Returns the running nodes.
   */
  reconcileAll(): Promise<RunningNode[]>;
}

export type ReconcilerDeps = Pick<ManagerDeps, 'repo' | 'docker' | 'log' | 'config' | 'isExpected'> & {
  readonly serial: Serial;
  readonly lifecycle: Pick<NodeLifecycle, 'ensureRunning' | 'removeNode'>;
  readonly drains: Pick<PoolDrains, 'begin' | 'resume' | 'deleting'>;
  /** Records a death nobody saw (see deaths.ts). */
  readonly nodeDied: (death: Death) => Promise<boolean>;
};

export function createReconciler(deps: ReconcilerDeps): Reconciler {
  const { repo, docker, log, config, serial, lifecycle, drains } = deps;

  async function reconcile(pool: Pool, order?: OrderRef): Promise<{ nodeIds: string[]; draining: boolean }> {
    const image = imageOf(pool.spec, config);
    let imageChecked: Promise<void> | undefined;
    const ensureImage: EnsureImage = () => (imageChecked ??= docker.ensureImage(image));

    const nodeIds: string[] = [];
    for (let ordinal = 1; ordinal <= pool.desired_nodes; ordinal++) {
      const node = await repo.ensureNode({ tenantId: pool.tenant_id, poolId: pool.id, ordinal, name: nodeName(pool.name, ordinal) });
      nodeIds.push(node.id);
      if (node.status === 'stopped' || node.status === 'sleeping') continue;
      await lifecycle.ensureRunning(pool, node, ensureImage);
    }

    const surplus = (await repo.poolNodes(pool.tenant_id, pool.id)).filter((n) => n.ordinal > pool.desired_nodes && n.status !== 'removed');
    if (surplus.length) await drains.begin(pool, 'scale', 'scaled down', order);
    await removeStrays(pool, new Set([...nodeIds, ...surplus.map((n) => n.id)]));
    return { nodeIds, draining: surplus.length > 0 };
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

  /** Nodes recorded as running whose container is not: they died while nobody was watching. */
  async function noticeMissedDeaths(pool: Pool): Promise<void> {
    const containers = await docker.findContainers({ [Labels.tenant]: pool.tenant_id, [Labels.pool]: pool.id });
    for (const node of await repo.poolNodes(pool.tenant_id, pool.id)) {
      const containerId = node.container_id;
      if (node.status !== 'running' || !containerId || deps.isExpected(containerId)) continue;
      const container = containers.find((c) => c.id === containerId);
      if (container?.running) continue;
      const state = container ? await docker.inspect(containerId).catch(() => null) : null;
      await deps.nodeDied({
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
    // Drains a crash interrupted go on first, so the pools below find them recorded.
    await drains.resume();
    for (const { tenant_id: tenantId, id: poolId } of await repo.listPools()) {
      try {
        await serial(poolId, async () => {
          const pool = await repo.findPool(tenantId, poolId);
          if (!pool || pool.status === 'deleted' || (await drains.deleting(pool))) return;
          await noticeMissedDeaths(pool);
          await reconcile(pool);
        });
      } catch (err) {
        if (!(err instanceof OrderFailure || err instanceof DockerOpError)) throw err;
        log.warn({ poolId, err: err.message }, 'could not reconcile a pool; the next reconciliation tries again');
      }
    }
    const nodes = await repo.listNodes({});
    return nodes
      .filter((n) => n.status === 'running' && n.container_id)
      .map((n) => ({ containerId: n.container_id!, node: { tenantId: n.tenant_id, poolId: n.pool_id, nodeId: n.id } }));
  }

  return { reconcile, removeStrays, reconcileAll };
}
