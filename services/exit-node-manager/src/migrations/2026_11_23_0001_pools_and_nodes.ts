import { sql, type Kysely } from '@switchyard/db';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('pools')
    .addColumn('tenant_id', 'uuid', (c) => c.notNull())
    .addColumn('id', 'uuid', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('exit', 'app')`))
    .addColumn('spec', 'jsonb', (c) => c.notNull())
    .addColumn('desired_nodes', 'integer', (c) => c.notNull().check(sql`desired_nodes >= 0`))
    .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('active', 'deleted')`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('pools_pk', ['tenant_id', 'id'])
    .execute();
  // A deleted pool frees its name for a new pool.
  await sql`create unique index pools_live_name on pools (tenant_id, name) where status <> 'deleted'`.execute(db);

  await db.schema
    .createTable('nodes')
    .addColumn('tenant_id', 'uuid', (c) => c.notNull())
    .addColumn('id', 'uuid', (c) => c.notNull())
    .addColumn('pool_id', 'uuid', (c) => c.notNull())
    .addColumn('ordinal', 'integer', (c) => c.notNull().check(sql`ordinal >= 1`))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('container_id', 'text')
    .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('creating', 'starting', 'running', 'stopping', 'stopped', 'sleeping', 'error', 'removed')`))
    .addColumn('ports', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('started_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('nodes_pk', ['tenant_id', 'id'])
    .addUniqueConstraint('nodes_pool_ordinal', ['tenant_id', 'pool_id', 'ordinal'])
    .addForeignKeyConstraint('nodes_pool_fk', ['tenant_id', 'pool_id'], 'pools', ['tenant_id', 'id'])
    .execute();
}
