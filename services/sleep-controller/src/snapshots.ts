import type { Payload, ReplyOf } from '@switchyard/contracts';
import type { ServiceContext } from '@switchyard/service-kit';
import type { IdleDetector } from './idle-detector.js';
import { poolKey, type PolicyStore } from './policy-store.js';

export interface SnapshotDeps {
  /** pool.req.snapshot; throws when exit-node-manager does not answer in time. */
  readonly request: (p: Payload<'pool.req.snapshot'>) => Promise<ReplyOf<'pool.req.snapshot'>>;
  readonly detector: IdleDetector;
  readonly policies: PolicyStore;
  readonly log: Pick<ServiceContext<unknown>['log'], 'debug'>;
}

type SeedPolicy = (tenantId: string, poolId: string, policy: NonNullable<Payload<'pool.evt.changed'>['spec']['sleep']>) => Promise<void>;

/** The controller's pools, nodes and policies rebuilt from exit-node-manager's snapshots. */
export function createSnapshots(deps: SnapshotDeps) {
  const { detector, policies, log } = deps;

  async function take(tenantId?: string) {
    const requestedAt = Date.now();
    const reply = await deps.request(tenantId ? { tenantId } : {});
    detector.replace(reply, requestedAt, Date.now(), tenantId);
    return { reply, requestedAt };
  }

  return {
    /** One tenant's pools and nodes: for a command about one this controller does not know yet. */
    refresh: async (tenantId: string) => void (await take(tenantId)),
    /** Everything: pools, nodes, and the policies of pools gone or never seeded. */
    async rebuild(seedPolicy: SeedPolicy): Promise<void> {
      const { reply, requestedAt } = await take();
      await policies.load();
      // Pools whose pool.evt.changed was missed still get the policy of their spec.
      for (const pool of reply.pools) if (pool.spec.sleep) await seedPolicy(pool.tenantId, pool.poolId, pool.spec.sleep);
      const pruned = await policies.prune(new Set(reply.pools.map((p) => poolKey(p.tenantId, p.poolId))), new Date(requestedAt));
      log.debug({ pools: reply.pools.length, nodes: reply.nodes.length, pruned }, 'pools and nodes rebuilt');
    },
  };
}
