import type { ConsumerHandlers } from '@switchyard/bus';
import { formatIssues, SLEEP_POLICY_DEFAULTS, sleepPolicyIssues, type Payload } from '@switchyard/contracts';
import { createOrderReporter, OrderFailure, type EventHandlers } from '@switchyard/service-kit';
import type { IdleDetector } from './idle-detector.js';
import type { PolicyStore } from './policy-store.js';
import { putToSleep, type SleeperDeps } from './sleeper.js';

export interface HandlerDeps extends SleeperDeps {
  readonly detector: IdleDetector;
  readonly policies: PolicyStore;
  /** Rebuilds the tenant's pools and nodes from pool.req.snapshot: for a pool or node not known yet. */
  readonly refresh: (tenantId: string) => Promise<void>;
}

export type CommandHandlers = ConsumerHandlers<'sleepControllerCommands'>;

type SpecPolicy = NonNullable<Payload<'pool.evt.changed'>['spec']['sleep']>;

/**
 * One handler per subject of CONSUMERS.sleepControllerCommands, and the events the controller
 * follows: pool events (which also seed policies), node events, stats and wakes.
 */
export function createHandlers(deps: HandlerDeps) {
  const { detector, policies, publish, log } = deps;
  const orders = createOrderReporter({ publish, log });

  async function knownPool(tenantId: string, poolId: string) {
    if (!detector.pool(tenantId, poolId)) await deps.refresh(tenantId);
    if (!detector.pool(tenantId, poolId)) throw new OrderFailure(`unknown pool ${poolId}`);
  }

  async function knownNode(tenantId: string, nodeId: string) {
    const found = detector.node(nodeId);
    if (found?.tenantId === tenantId) return found;
    await deps.refresh(tenantId);
    const node = detector.node(nodeId);
    if (node?.tenantId !== tenantId) throw new OrderFailure(`unknown node ${nodeId}`);
    return node;
  }

  async function setPolicy(p: Payload<'sleep.cmd.policy'>): Promise<void> {
    const issues = sleepPolicyIssues(p.policy);
    if (issues.length) throw new OrderFailure(`invalid sleep policy: ${formatIssues(issues)}`);
    await knownPool(p.tenantId, p.poolId);
    const stored = await policies.set(p.tenantId, p.poolId, p.policy);
    await publish(
      'sleep.evt.policy',
      { tenantId: p.tenantId, poolId: p.poolId, policy: p.policy, at: stored.updatedAt.toISOString() },
      { msgId: p.orderId ? `sleep.evt.policy:${p.orderId}` : `sleep.evt.policy:${p.poolId}:${stored.updatedAt.getTime()}` },
    );
    log.info({ tenantId: p.tenantId, poolId: p.poolId, policy: p.policy }, 'sleep policy set');
    await orders.fulfil(p, { poolId: p.poolId });
  }

  async function sleepNode(p: Payload<'sleep.cmd.node'>): Promise<void> {
    const node = await knownNode(p.tenantId, p.nodeId);
    if (node.status === 'sleeping') return orders.fulfil(p, { poolId: node.poolId, nodeIds: [node.nodeId] });
    if (node.status !== 'running') throw new OrderFailure(`node ${node.nodeId} is ${node.status}; only a running node can be put to sleep`);
    if (node.ports.length === 0) throw new OrderFailure(`node ${node.nodeId} has no published ports for the activator to catch`);
    if (!detector.beginSleep(node.nodeId, Date.now())) throw new OrderFailure(`node ${node.nodeId} is already being put to sleep`);
    const policy = policies.get(node.tenantId, node.poolId) ?? SLEEP_POLICY_DEFAULTS;
    let outcome;
    try {
      outcome = await putToSleep(deps, node, policy, { reason: 'manual', idleSec: 0, orderId: p.orderId });
    } catch (err) {
      detector.sleepFailed(node.nodeId);
      throw err;
    }
    if (!outcome.ok) {
      detector.sleepFailed(node.nodeId);
      throw new OrderFailure(outcome.reason);
    }
  }

  const commands: CommandHandlers = {
    'sleep.cmd.policy': (p) => orders.run(p, 'sleep.cmd.policy', () => setPolicy(p)),
    'sleep.cmd.node': (p) => orders.run(p, 'sleep.cmd.node', () => sleepNode(p)),
  };

  /** A pool whose spec carries a sleep policy gets it, unless it has one already (set through the API). */
  async function seedPolicy(tenantId: string, poolId: string, policy: SpecPolicy) {
    const seeded = await policies.seed(tenantId, poolId, policy);
    if (!seeded) return;
    await publish('sleep.evt.policy', { tenantId, poolId, policy, at: seeded.updatedAt.toISOString() }, { msgId: `sleep.evt.policy:${poolId}:${seeded.updatedAt.getTime()}` });
    log.info({ tenantId, poolId, policy }, 'sleep policy seeded from the pool spec');
  }

  const events = {
    'pool.evt.changed': async (p) => {
      detector.poolChanged(p, Date.now());
      if (p.spec.sleep) await seedPolicy(p.tenantId, p.poolId, p.spec.sleep);
    },
    'pool.evt.deleted': async (p) => {
      detector.poolDeleted(p.tenantId, p.poolId, Date.now());
      await policies.remove(p.tenantId, p.poolId);
    },
    'node.evt.started': async (e) => detector.nodeStarted(e, Date.now()),
    'node.evt.stopped': async (e) => detector.nodeStopped(e, Date.now()),
    'node.evt.died': async (e) => detector.nodeDied(e, Date.now()),
    'node.evt.removed': async (e) => detector.nodeRemoved(e, Date.now()),
    'node.evt.stats': async (e) => detector.sample(e),
    // A caught connection reached the node: its idle window starts again.
    'activator.evt.woke': async (e) => detector.touched(e.nodeId, Date.now()),
  } satisfies EventHandlers;

  return { commands, events, seedPolicy };
}
