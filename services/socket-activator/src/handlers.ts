import type { EventHandlers } from '@switchyard/service-kit';
import type { Activator } from './activator.js';
import type { PoolTags } from './pool-tags.js';

/** What the activator hears: the wakes' orders, node and pool changes (the tags ACL policies name), and sleep policies. */
export function activatorEvents(activator: Activator, tags: PoolTags) {
  return {
    'order.evt.failed': (p) => activator.orderFailed(p),
    'order.evt.fulfilled': (p) => activator.orderFulfilled(p),
    'node.evt.started': (p) => activator.nodeStarted(p),
    'node.evt.stopped': (p) => activator.nodeStopped(p),
    'node.evt.health': (p) => activator.nodeHealth(p),
    'node.evt.removed': (p) => activator.nodeRemoved(p),
    'pool.evt.changed': async (p) => tags.set(p),
    'pool.evt.deleted': (p) => {
      tags.delete(p.poolId);
      return activator.poolDeleted(p);
    },
    'sleep.evt.policy': (p) => activator.policyChanged(p),
  } satisfies EventHandlers;
}
