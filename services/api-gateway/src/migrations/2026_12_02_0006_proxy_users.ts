import { sql, type Kysely } from '@switchyard/db';

// Frozen once shipped. A revoked user keeps its row (revoked_at) so its id is never reused:
// load balancers remember revoked ids to refuse a stale snapshot's copy. A name is unique
// among a tenant's live users only, so a revoked name can be taken again.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('proxy_users')
    .addColumn('tenant_id', 'uuid', (c) => c.notNull())
    .addColumn('id', 'uuid', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('algorithm', 'text', (c) => c.notNull().check(sql`algorithm in ('scrypt')`))
    .addColumn('cost_n', 'integer', (c) => c.notNull())
    .addColumn('cost_r', 'integer', (c) => c.notNull())
    .addColumn('cost_p', 'integer', (c) => c.notNull())
    .addColumn('salt', 'text', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('revoked_at', 'timestamptz')
    .addPrimaryKeyConstraint('proxy_users_pk', ['tenant_id', 'id'])
    .execute();
  await sql`create unique index proxy_users_live_name on proxy_users (tenant_id, name) where revoked_at is null`.execute(db);
}
