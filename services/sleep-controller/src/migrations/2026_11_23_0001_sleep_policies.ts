import { sql, type Kysely } from '@switchyard/db';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('sleep_policies')
    .addColumn('tenant_id', 'uuid', (c) => c.notNull())
    .addColumn('pool_id', 'uuid', (c) => c.notNull())
    .addColumn('enabled', 'boolean', (c) => c.notNull())
    .addColumn('idle_window_sec', 'integer', (c) => c.notNull().check(sql`idle_window_sec between 1 and 604800`))
    .addColumn('min_awake', 'integer', (c) => c.notNull().check(sql`min_awake between 0 and 100`))
    .addColumn('probe_interval_ms', 'integer', (c) => c.notNull().check(sql`probe_interval_ms between 1 and 10000`))
    .addColumn('probe_timeout_ms', 'integer', (c) => c.notNull().check(sql`probe_timeout_ms between 1 and 600000`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('sleep_policies_pk', ['tenant_id', 'pool_id'])
    .addCheckConstraint('sleep_policies_probe_timeout', sql`probe_timeout_ms >= probe_interval_ms`)
    .execute();
}
