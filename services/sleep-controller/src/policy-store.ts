import type { Kysely } from '@switchyard/db';
import type { SleepPolicy } from '@switchyard/contracts';
import type { Database, SleepPolicyRow } from './tables.js';

export interface StoredPolicy {
  readonly tenantId: string;
  readonly poolId: string;
  readonly policy: SleepPolicy;
  readonly updatedAt: Date;
}

/**
 * The `sleep_policies` table and a copy of it in memory: the ticker reads policies every
 * round and must not query Postgres for it. Writes go to the table first, then the copy.
 */
export interface PolicyStore {
  /** Replaces the copy with what the table holds. */
  load(): Promise<void>;
  get(tenantId: string, poolId: string): SleepPolicy | undefined;
  /** The shortest idle window of the enabled policies, if any is enabled. */
  shortestWindowSec(): number | undefined;
  /** Writes the policy, replacing any. */
  set(tenantId: string, poolId: string, policy: SleepPolicy): Promise<StoredPolicy>;
  /** Writes the policy only if the pool has none yet; undefined when it had one. */
  seed(tenantId: string, poolId: string, policy: SleepPolicy): Promise<StoredPolicy | undefined>;
  remove(tenantId: string, poolId: string): Promise<void>;
  /**
   * Deletes the policies of pools that are not `live`, written before `before`: a policy set
   * after a snapshot was asked for may belong to a pool the snapshot did not know yet.
   */
  prune(live: ReadonlySet<string>, before: Date): Promise<number>;
  /** From the table: a tenant's policies, of one pool or all. */
  list(tenantId: string, poolId?: string): Promise<StoredPolicy[]>;
}

export const poolKey = (tenantId: string, poolId: string) => `${tenantId}/${poolId}`;

function toStored(row: SleepPolicyRow): StoredPolicy {
  return {
    tenantId: row.tenant_id,
    poolId: row.pool_id,
    policy: {
      enabled: row.enabled,
      idleWindowSec: row.idle_window_sec,
      minAwake: row.min_awake,
      probeIntervalMs: row.probe_interval_ms,
      probeTimeoutMs: row.probe_timeout_ms,
    },
    updatedAt: row.updated_at,
  };
}

function columns(policy: SleepPolicy) {
  return {
    enabled: policy.enabled,
    idle_window_sec: policy.idleWindowSec,
    min_awake: policy.minAwake,
    probe_interval_ms: policy.probeIntervalMs,
    probe_timeout_ms: policy.probeTimeoutMs,
  };
}

export function createPolicyStore(db: Kysely<Database>): PolicyStore {
  let cache = new Map<string, SleepPolicy>();
  // Counts writes, so a load that raced one does not put back what the write replaced.
  let writes = 0;

  return {
    async load() {
      const before = writes;
      const rows = await db.selectFrom('sleep_policies').selectAll().execute();
      if (writes !== before) return;
      cache = new Map(rows.map((r) => [poolKey(r.tenant_id, r.pool_id), toStored(r).policy]));
    },

    get: (tenantId, poolId) => cache.get(poolKey(tenantId, poolId)),

    shortestWindowSec() {
      let shortest: number | undefined;
      for (const p of cache.values()) if (p.enabled && (shortest === undefined || p.idleWindowSec < shortest)) shortest = p.idleWindowSec;
      return shortest;
    },

    async set(tenantId, poolId, policy) {
      const row = await db
        .insertInto('sleep_policies')
        .values({ tenant_id: tenantId, pool_id: poolId, ...columns(policy), updated_at: new Date() })
        .onConflict((oc) => oc.columns(['tenant_id', 'pool_id']).doUpdateSet({ ...columns(policy), updated_at: new Date() }))
        .returningAll()
        .executeTakeFirstOrThrow();
      writes++;
      cache.set(poolKey(tenantId, poolId), policy);
      return toStored(row);
    },

    async seed(tenantId, poolId, policy) {
      const row = await db
        .insertInto('sleep_policies')
        .values({ tenant_id: tenantId, pool_id: poolId, ...columns(policy), updated_at: new Date() })
        .onConflict((oc) => oc.columns(['tenant_id', 'pool_id']).doNothing())
        .returningAll()
        .executeTakeFirst();
      if (!row) return undefined;
      writes++;
      cache.set(poolKey(tenantId, poolId), policy);
      return toStored(row);
    },

    async remove(tenantId, poolId) {
      await db.deleteFrom('sleep_policies').where('tenant_id', '=', tenantId).where('pool_id', '=', poolId).execute();
      writes++;
      cache.delete(poolKey(tenantId, poolId));
    },

    async prune(live, before) {
      const rows = await db.selectFrom('sleep_policies').select(['tenant_id', 'pool_id', 'updated_at']).where('updated_at', '<', before).execute();
      let pruned = 0;
      for (const r of rows) {
        if (live.has(poolKey(r.tenant_id, r.pool_id))) continue;
        const deleted = await db
          .deleteFrom('sleep_policies')
          .where('tenant_id', '=', r.tenant_id)
          .where('pool_id', '=', r.pool_id)
          .where('updated_at', '<', before)
          .executeTakeFirst();
        if (deleted.numDeletedRows > 0n) {
          writes++;
          cache.delete(poolKey(r.tenant_id, r.pool_id));
          pruned++;
        }
      }
      return pruned;
    },

    async list(tenantId, poolId) {
      let q = db.selectFrom('sleep_policies').selectAll().where('tenant_id', '=', tenantId);
      if (poolId !== undefined) q = q.where('pool_id', '=', poolId);
      return (await q.orderBy('pool_id').execute()).map(toStored);
    },
  };
}
