import type { Kysely } from '@switchyard/db';
import type { DrainRecord, DrainStore } from './ports.js';
import type { Database, PoolDrainRow } from './tables.js';

const toRecord = (r: PoolDrainRow): DrainRecord => ({
  tenantId: r.tenant_id,
  id: r.id,
  poolId: r.pool_id,
  kind: r.kind,
  orderId: r.order_id,
  reason: r.reason,
  deadline: r.deadline,
  keepVolumes: r.keep_volumes,
});

/** The pool_drains table. */
export function sqlDrainStore(db: Kysely<Database>): DrainStore {
  return {
    async add(d) {
      await db
        .insertInto('pool_drains')
        .values({ tenant_id: d.tenantId, id: d.id, pool_id: d.poolId, kind: d.kind, order_id: d.orderId, reason: d.reason, deadline: d.deadline, keep_volumes: d.keepVolumes })
        .onConflict((oc) => oc.columns(['tenant_id', 'id']).doNothing())
        .execute();
      const row = await db.selectFrom('pool_drains').selectAll().where('tenant_id', '=', d.tenantId).where('id', '=', d.id).executeTakeFirst();
      // Ended between the two statements (a redelivery racing its own drain): nothing left to do.
      return row ? toRecord(row) : undefined;
    },
    async list(filter = {}) {
      let q = db.selectFrom('pool_drains').selectAll();
      if (filter.tenantId) q = q.where('tenant_id', '=', filter.tenantId);
      if (filter.poolId) q = q.where('pool_id', '=', filter.poolId);
      return (await q.orderBy('created_at').execute()).map(toRecord);
    },
    async remove(tenantId, id) {
      await db.deleteFrom('pool_drains').where('tenant_id', '=', tenantId).where('id', '=', id).execute();
    },
  };
}
