import { sql, type Kysely } from '@switchyard/db';

export async function up(db: Kysely<any>): Promise<void> {
  // A tunnel to an app pool's port names the pool and no node; every other tunnel names a node.
  await db.schema
    .alterTable('tunnels')
    .alterColumn('node_id', (c) => c.dropNotNull())
    .execute();
  await db.schema.alterTable('tunnels').addColumn('pool_id', 'uuid').execute();
  await db.schema.alterTable('tunnels').addCheckConstraint('tunnels_node_or_pool', sql`(node_id is null) <> (pool_id is null)`).execute();
}
