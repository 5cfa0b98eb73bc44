import { sql, type Kysely } from '@switchyard/db';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('activator_catches')
    .addColumn('tenant_id', 'uuid', (c) => c.notNull())
    .addColumn('node_id', 'uuid', (c) => c.notNull())
    .addColumn('port_name', 'text', (c) => c.notNull())
    .addColumn('pool_id', 'uuid', (c) => c.notNull())
    .addColumn('container_port', 'integer', (c) => c.notNull())
    .addColumn('host_port', 'integer', (c) => c.notNull().check(sql`host_port between 1 and 65535`))
    .addColumn('public_port', 'integer', (c) => c.check(sql`public_port between 1 and 65535`))
    .addColumn('armed', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('armed_at', 'timestamptz')
    .addColumn('probe_interval_ms', 'integer', (c) => c.notNull().check(sql`probe_interval_ms >= 1`))
    .addColumn('probe_timeout_ms', 'integer', (c) => c.notNull().check(sql`probe_timeout_ms >= 1`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('activator_catches_pk', ['tenant_id', 'node_id', 'port_name'])
    .execute();
}
