import { sql, type Kysely } from '@switchyard/db';

// Frozen once shipped. Keys made before this keep working: admin keys get `admin`, member keys
// `write` (which includes `read`), and none of them expires (expires_at null) until it is
// rotated or revoked. The config key is found by the name ensureAdmin always gave it; every
// such key but the configured one is revoked at the next start.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('api_keys')
    .addColumn('scopes', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'::text[]`))
    .addColumn('prefix', 'text')
    .addColumn('expires_at', 'timestamptz')
    .addColumn('last_used_at', 'timestamptz')
    .addColumn('from_config', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('created_by', 'uuid')
    .addColumn('replaced_by', 'uuid')
    .execute();
  await sql`update api_keys set scopes = case role when 'admin' then array['admin'] else array['write'] end`.execute(db);
  await sql`update api_keys set from_config = true where role = 'admin' and name = 'admin (from config)'`.execute(db);
  await sql`alter table api_keys add constraint api_keys_scopes_known check (scopes <@ array['read', 'write', 'pools:write', 'proxy', 'keys', 'admin']::text[] and cardinality(scopes) > 0)`.execute(
    db,
  );
  // Listing a tenant's keys, newest first.
  await db.schema.createIndex('api_keys_tenant_created').on('api_keys').columns(['tenant_id', 'created_at desc']).execute();
}
