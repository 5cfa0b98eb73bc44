import { sql, type Kysely } from '@switchyard/db';

// Frozen once shipped. Results arrive as durable events that may be redelivered, and a
// POST stores its own answer too: (tenant, node, tested_at) makes both writes one row.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('speed_tests')
    .addColumn('tenant_id', 'uuid', (c) => c.notNull())
    .addColumn('id', 'uuid', (c) => c.notNull())
    .addColumn('node_id', 'uuid', (c) => c.notNull())
    .addColumn('download_mbps', 'double precision', (c) => c.notNull())
    .addColumn('upload_mbps', 'double precision', (c) => c.notNull())
    .addColumn('latency_ms', 'double precision', (c) => c.notNull())
    .addColumn('tested_at', 'timestamptz', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('speed_tests_pk', ['tenant_id', 'id'])
    .addUniqueConstraint('speed_tests_once', ['tenant_id', 'node_id', 'tested_at'])
    .execute();
  await db.schema.createIndex('speed_tests_tenant_tested').on('speed_tests').columns(['tenant_id', 'tested_at desc']).execute();
}
