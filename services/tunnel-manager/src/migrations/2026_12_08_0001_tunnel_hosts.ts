import { sql, type Kysely } from '@switchyard/db';

export async function up(db: Kysely<any>): Promise<void> {
  // The node hosts whose agents this edge serves: operator's infrastructure, not a tenant's, so
  // keyed by host (a reference table once distributed). The WireGuard key is the public half.
  await db.schema
    .createTable('tunnel_hosts')
    .addColumn('host_id', 'text', (c) => c.primaryKey())
    .addColumn('link_index', 'integer', (c) => c.notNull().unique().check(sql`link_index >= 2`))
    .addColumn('wireguard_public_key', 'text')
    // A rotation under way: the key the host switches to, accepted beside the old one until its first handshake.
    .addColumn('wireguard_next_key', 'text')
    .addColumn('rotate_wanted_at', 'timestamptz')
    // The host pair's key has a schedule of its own (TUNNEL_WG_ROTATE_HOURS): since the key came.
    .addColumn('wireguard_rotated_at', 'timestamptz')
    .addColumn('seen_at', 'timestamptz')
    .execute();
}
