import { Labels } from '@switchyard/docker';
import type { ContainerEvent } from './docker-events.js';
import type { Healer } from './healer.js';
import type { Manager } from './manager.js';
import type { CoreBus, Log } from './ports.js';
import type { StatsSampler } from './stats-sampler.js';

export interface ContainerEventDeps {
  readonly manager: Pick<Manager, 'nodeDied' | 'ownerOf'>;
  readonly healer: Pick<Healer, 'nodeDied'>;
  readonly sampler: Pick<StatsSampler, 'track' | 'untrack'>;
  readonly publish: CoreBus['publish'];
  /** Whether the manager itself is stopping or removing this container right now. */
  readonly isExpected: (containerId: string) => boolean;
  readonly log: Log;
}

// A container that keeps being OOM-killed before its die is seen must not grow the set forever.
const MAX_OOM_PENDING = 10_000;

/**
 * What the manager does with each Docker event of a managed container: a death it did not
 * cause is recorded and healed, a started node is sampled, a health change is published.
 * Never throws: the event stream goes on, and the next reconciliation catches what failed.
 */
export function createContainerEventHandler(deps: ContainerEventDeps): (e: ContainerEvent) => void {
  const { manager, healer, sampler, log } = deps;
  // oom comes just before the die it causes.
  const oomKilled = new Set<string>();
  const warn = (what: string) => (err: unknown) => log.warn({ err: err instanceof Error ? err.message : String(err) }, what);

  return (e) => {
    const tenantId = e.labels[Labels.tenant] ?? '';
    const nodeId = e.labels[Labels.node] ?? '';
    switch (e.action) {
      case 'oom':
        if (oomKilled.size > MAX_OOM_PENDING) oomKilled.clear();
        oomKilled.add(e.containerId);
        return;
      case 'die': {
        sampler.untrack(e.containerId);
        const oom = oomKilled.delete(e.containerId);
        if (deps.isExpected(e.containerId)) return;
        const death = { tenantId, nodeId, containerId: e.containerId, exitCode: e.exitCode ?? -1, oomKilled: oom, when: e.timeNano };
        void manager
          .nodeDied(death)
          .then((ours) => ours && healer.nodeDied(tenantId, nodeId))
          .catch(warn('could not record a node death; the next reconciliation will'));
        return;
      }
      case 'start':
        void manager
          .ownerOf(tenantId, nodeId, e.containerId)
          .then((node) => node && sampler.track(e.containerId, { tenantId, poolId: node.pool_id, nodeId }))
          .catch(warn('could not look up a started container'));
        return;
      case 'destroy':
        sampler.untrack(e.containerId);
        return;
      case 'health_status':
        void manager
          .ownerOf(tenantId, nodeId, e.containerId)
          .then(async (node) => {
            if (!node || !e.health) return;
            await deps.publish(
              'node.evt.health',
              { tenantId, poolId: node.pool_id, nodeId, at: new Date().toISOString(), containerId: e.containerId, status: e.health },
              { msgId: `node.evt.health:${e.containerId}:${e.timeNano}` },
            );
          })
          .catch(warn('could not publish a health_status event'));
        return;
    }
  };
}
