import { sql, type Kysely } from '@switchyard/db';

// Frozen once shipped. A drain (scale-down, pool delete) runs in the background, for up to the
// pool's drainSec; the row is its intent, so a restarted manager finishes it and its order.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('pool_drains')
    .addColumn('tenant_id', 'uuid', (c) => c.notNull())
    // The order's id when there is one, so a redelivered command records its drain once.
    .addColumn('id', 'uuid', (c) => c.notNull())
    .addColumn('pool_id', 'uuid', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('scale', 'delete')`))
    .addColumn('order_id', 'uuid')
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('deadline', 'timestamptz', (c) => c.notNull())
    // A delete whose order says to keep the nodes' named volumes.
    .addColumn('keep_volumes', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('pool_drains_pk', ['tenant_id', 'id'])
    .execute();
  await sql`create index pool_drains_pool on pool_drains (tenant_id, pool_id)`.execute(db);
}
