import { sql, type Kysely } from '@switchyard/db';

// Frozen once shipped. The timeline is fed by durable events that may be delivered more than
// once (redelivery, a consumer recreated from the stream's start): `source` names the event
// itself, so (tenant, source) makes every delivery of it one row.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('activity')
    .addColumn('tenant_id', 'uuid', (c) => c.notNull())
    .addColumn('seq', 'bigserial', (c) => c.notNull())
    .addColumn('source', 'text', (c) => c.notNull())
    .addColumn('pool_id', 'uuid')
    .addColumn('node_id', 'uuid')
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('slept', 'woke', 'wake_failed', 'policy_changed', 'started', 'stopped', 'died', 'removed', 'draining')`))
    .addColumn('message', 'text', (c) => c.notNull())
    .addColumn('details', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('at', 'timestamptz', (c) => c.notNull())
    .addColumn('recorded_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('activity_pk', ['tenant_id', 'seq'])
    .addUniqueConstraint('activity_once', ['tenant_id', 'source'])
    .execute();
  // Pages are read newest first by event time, for the tenant, one pool or one node.
  await sql`create index activity_tenant_at on activity (tenant_id, at desc, seq desc)`.execute(db);
  await sql`create index activity_pool_at on activity (tenant_id, pool_id, at desc, seq desc) where pool_id is not null`.execute(db);
  await sql`create index activity_node_at on activity (tenant_id, node_id, at desc, seq desc) where node_id is not null`.execute(db);
}
