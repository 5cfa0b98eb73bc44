import type { Payload, ReplyOf } from '@switchyard/contracts';
import type { EventHandlers, ServiceContext } from '@switchyard/service-kit';
import type { HealthMonitor } from './monitor.js';
import { readSleepPolicies } from './sleep-policies.js';

/** The events that keep the monitor's node set live between rebuilds, and its passive signals. */
export function monitorEvents(monitor: HealthMonitor) {
  return {
    'pool.evt.changed': async (p) => monitor.poolChanged(p),
    'pool.evt.deleted': async (p) => monitor.poolDeleted(p),
    'node.evt.created': async (p) => monitor.nodeCreated(p),
    'node.evt.started': async (p) => monitor.nodeStarted(p),
    'node.evt.stopped': async (p) => monitor.nodeStopped(p),
    'node.evt.died': async (p) => monitor.nodeDied(p),
    'node.evt.removed': async (p) => monitor.nodeRemoved(p),
    'node.evt.draining': async (p) => monitor.nodeDraining(p),
    'node.evt.health': async (p) => monitor.nodeHealthReported(p),
    'sleep.evt.policy': async (p) => monitor.sleepPolicyChanged(p),
    'lb.evt.connfail': async (p) => monitor.connectionFailed(p),
  } satisfies EventHandlers;
}

export interface RebuildDeps {
  readonly monitor: HealthMonitor;
  /** pool.req.snapshot; throws when exit-node-manager does not answer in time. */
  readonly snapshot: () => Promise<ReplyOf<'pool.req.snapshot'>>;
  /** sleep.req.policy of one tenant; throws when the sleep-controller does not answer in time. */
  readonly sleepPolicies: (p: Payload<'sleep.req.policy'>) => Promise<ReplyOf<'sleep.req.policy'>>;
  readonly log: Pick<ServiceContext<unknown>['log'], 'debug'>;
}

/** Rebuilds the node set from exit-node-manager's snapshot and the sleep-controller's policies. */
export function rebuildNodeSet(deps: RebuildDeps): () => Promise<void> {
  const { monitor, log } = deps;
  return async () => {
    const requestedAt = performance.now();
    const snapshot = await deps.snapshot();
    const policies = await readSleepPolicies(
      deps.sleepPolicies,
      snapshot.pools.map((p) => p.tenantId),
      (tenantId, err) => log.debug({ tenantId, err: err.message }, 'no sleep policies from the sleep-controller; keeping what events and pool specs say'),
    );
    monitor.replace(snapshot, requestedAt, policies);
    log.debug({ pools: snapshot.pools.length, nodes: snapshot.nodes.length, sleepPolicyTenants: policies.size }, 'node set rebuilt');
  };
}
