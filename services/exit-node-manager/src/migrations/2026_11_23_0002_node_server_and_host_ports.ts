import { sql, type Kysely } from '@switchyard/db';

// `server`: the VPN server a node was added with (node.cmd.add). `host_ports`: the ports a
// host-network node listens on, chosen once so a restart or replacement keeps them.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('nodes')
    .addColumn('server', 'text')
    .addColumn('host_ports', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .execute();
}
