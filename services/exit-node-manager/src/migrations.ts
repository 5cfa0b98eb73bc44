import { sql, type Kysely, type Migration } from '@switchyard/db';

// Frozen: a shipped migration is never edited; change the schema with a new one.
// tenant_id leads every key so both tables can be distributed by tenant (Citus), and the
// pool foreign key includes it so a node and its pool always live on the same shard.
export const migrations: Record<string, Migration> = {
  '2026_11_23_0001_pools_and_nodes': {
    async up(db: Kysely<any>) {
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
        .addColumn('status', 'text', (c) =>
          c
            .notNull()
            .check(sql`status in ('creating', 'starting', 'running', 'stopping', 'stopped', 'sleeping', 'error', 'removed')`),
        )
        .addColumn('ports', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
        .addColumn('started_at', 'timestamptz')
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addPrimaryKeyConstraint('nodes_pk', ['tenant_id', 'id'])
        .addUniqueConstraint('nodes_pool_ordinal', ['tenant_id', 'pool_id', 'ordinal'])
        .addForeignKeyConstraint('nodes_pool_fk', ['tenant_id', 'pool_id'], 'pools', ['tenant_id', 'id'])
        .execute();
    },
  },
  // `server`: the VPN server a node was added with (node.cmd.add). `host_ports`: the ports a
  // host-network node listens on, chosen once so a restart or replacement keeps them.
  '2026_11_23_0002_node_server_and_host_ports': {
    async up(db: Kysely<any>) {
      await db.schema
        .alterTable('nodes')
        .addColumn('server', 'text')
        .addColumn('host_ports', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
        .execute();
    },
  },
  // The load balancer listens on an app pool's publicPort for every tenant at once, so two
  // live pools must not claim the same one; the index makes the check race-free.
  '2026_11_23_0003_pools_live_public_port': {
    async up(db: Kysely<any>) {
      await sql`create unique index pools_live_public_port on pools ((spec->>'publicPort')) where status <> 'deleted'`.execute(db);
    },
  },
};
