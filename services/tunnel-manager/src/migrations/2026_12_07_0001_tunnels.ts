import { sql, type Kysely } from '@switchyard/db';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('tunnels')
    .addColumn('tenant_id', 'uuid', (c) => c.notNull())
    .addColumn('id', 'uuid', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('node_id', 'uuid', (c) => c.notNull())
    .addColumn('spec', 'jsonb', (c) => c.notNull())
    .addColumn('public_port', 'integer', (c) => c.notNull().check(sql`public_port between 1 and 65535`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('rotated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('tunnels_pk', ['tenant_id', 'id'])
    .addUniqueConstraint('tunnels_name', ['tenant_id', 'name'])
    .execute();
  // One edge today: its ports are unique across tenants. Per edge once there are several.
  await db.schema.createIndex('tunnels_public_port').on('tunnels').column('public_port').unique().execute();

  // The public halves of the nodes' SSH keys, with what the edge allows each: the private
  // halves stay in files on the node's host.
  await db.schema
    .createTable('tunnel_keys')
    .addColumn('tenant_id', 'uuid', (c) => c.notNull())
    .addColumn('tunnel_id', 'uuid', (c) => c.notNull())
    .addColumn('key_id', 'text', (c) => c.notNull())
    .addColumn('path', 'text', (c) => c.notNull().check(sql`path in ('ssh')`))
    .addColumn('public_key', 'text', (c) => c.notNull())
    .addColumn('fingerprint', 'text', (c) => c.notNull())
    .addColumn('listen_port', 'integer', (c) => c.notNull().check(sql`listen_port between 1 and 65535`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('valid_until', 'timestamptz', (c) => c.notNull())
    // Set when a rotation replaced the key: it ends with its overlap, not by expiring.
    .addColumn('superseded_at', 'timestamptz')
    .addColumn('revoked_at', 'timestamptz')
    .addPrimaryKeyConstraint('tunnel_keys_pk', ['tenant_id', 'tunnel_id', 'key_id'])
    .addForeignKeyConstraint('tunnel_keys_tunnel', ['tenant_id', 'tunnel_id'], 'tunnels', ['tenant_id', 'id'], (fk) => fk.onDelete('cascade'))
    .execute();

  // A forward port belongs to one live key: two sessions on one port would serve each other's tunnel.
  await db.schema.createIndex('tunnel_keys_live_port').on('tunnel_keys').column('listen_port').unique().where(sql.ref('revoked_at'), 'is', null).execute();

  // The latest of each path, kept so a restart and the API show what the forwarder last saw.
  await db.schema
    .createTable('tunnel_paths')
    .addColumn('tenant_id', 'uuid', (c) => c.notNull())
    .addColumn('tunnel_id', 'uuid', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('wireguard', 'ssh', 'direct')`))
    .addColumn('state', 'text', (c) => c.notNull().check(sql`state in ('up', 'down', 'unknown')`))
    .addColumn('latency_ms', 'double precision')
    .addColumn('reason', 'text')
    .addColumn('changed_at', 'timestamptz')
    .addPrimaryKeyConstraint('tunnel_paths_pk', ['tenant_id', 'tunnel_id', 'kind'])
    .addForeignKeyConstraint('tunnel_paths_tunnel', ['tenant_id', 'tunnel_id'], 'tunnels', ['tenant_id', 'id'], (fk) => fk.onDelete('cascade'))
    .execute();
}
