import { Labels } from '@switchyard/docker';
import { imageOf } from './container-spec.js';
import type { Serial } from './keyed-serial.js';
import { nodeAttributes, type NodeLifecycle } from './node-lifecycle.js';
import type { Death, ManagerDeps } from './ports.js';
import type { Node } from './tables.js';

export interface Deaths {
  /** The node whose current container this is, if it is one of ours. */
  ownerOf(tenantId: string, nodeId: string, containerId: string): Promise<Node | undefined>;
  /**
   * A death this manager did not cause: publishes node.evt.died and marks the node in error.
   * Returns false when it is not a live node's current container (another system's, an old one).
   */
  nodeDied(death: Death): Promise<boolean>;
  /** One attempt, in the pool's turn, to run the node again; 'skipped' when it should not run. */
  heal(tenantId: string, nodeId: string, action: 'restart' | 'replace'): Promise<'healed' | 'skipped'>;
}

export type DeathsDeps = Pick<ManagerDeps, 'repo' | 'docker' | 'bus' | 'log' | 'config'> & {
  readonly serial: Serial;
  readonly lifecycle: Pick<NodeLifecycle, 'ensureRunning' | 'setHot'>;
};

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Deaths of node containers and the heal attempts after them (healer.ts decides when and which). */
export function createDeaths(deps: DeathsDeps): Deaths {
  const { repo, docker, bus, log, config, serial, lifecycle } = deps;

  async function ownerOf(tenantId: string, nodeId: string, containerId: string): Promise<Node | undefined> {
    // Labels of containers another Switchyard on this engine made can say anything.
    if (!UUID.test(tenantId) || !UUID.test(nodeId)) return undefined;
    const node = await repo.findNode(tenantId, nodeId);
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
        { tenantId: node.tenant_id, poolId: node.pool_id, nodeId: node.id, at: new Date().toISOString(), containerId: d.containerId, exitCode: d.exitCode, oomKilled: d.oomKilled },
        { msgId: `node.evt.died:${d.containerId}:${d.when}` },
      );
    } catch (err) {
      // Healing must not wait for NATS: the node.evt.started that follows tells the same story.
      log.warn({ nodeId: node.id, err: (err as Error).message }, 'could not publish node.evt.died');
    }
    await lifecycle.setHot(node, 'error');
    await repo.updateNode(node.tenant_id, node.id, { status: 'error', ports: [] });
    log.warn({ nodeId: node.id, containerId: d.containerId, exitCode: d.exitCode, oomKilled: d.oomKilled }, `node ${node.name} died`);
    return true;
  }

  async function heal(tenantId: string, nodeId: string, action: 'restart' | 'replace'): Promise<'healed' | 'skipped'> {
    const found = await repo.findNode(tenantId, nodeId);
    if (!found) return 'skipped';
    return serial(found.pool_id, async () => {
      let node = await repo.findNode(tenantId, nodeId);
      // Stopped, put to sleep or removed since it died: someone decided it should not run.
      if (!node || (node.status !== 'error' && node.status !== 'running')) return 'skipped';
      const pool = await repo.findPool(tenantId, node.pool_id);
      if (!pool || pool.status === 'deleted' || node.ordinal > pool.desired_nodes) return 'skipped';
      if (action === 'replace') {
        const attrs = nodeAttributes(node);
        for (const c of await docker.findContainers({ [Labels.tenant]: tenantId, [Labels.node]: nodeId })) await docker.remove(c.id, attrs);
        await repo.updateNode(tenantId, nodeId, { containerId: null });
        node = { ...node, container_id: null };
        log.warn({ nodeId, containerId: found.container_id }, `replacing the container of node ${node.name}`);
      }
      const image = imageOf(pool.spec, config);
      await lifecycle.ensureRunning(pool, node, () => docker.ensureImage(image));
      return 'healed';
    });
  }

  return { ownerOf, nodeDied, heal };
}
