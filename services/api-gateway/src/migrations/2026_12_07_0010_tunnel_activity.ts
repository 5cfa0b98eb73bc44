import { sql, type Kysely } from '@switchyard/db';

// Frozen once shipped. Tunnel events join the timeline (api-gateway-activity-tunnels); their
// entries name the node and no pool, which the table already allows.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table activity drop constraint activity_kind_check`.execute(db);
  await sql`alter table activity add constraint activity_kind_check
    check (kind in ('slept', 'woke', 'wake_failed', 'policy_changed', 'started', 'stopped', 'died', 'removed', 'draining', 'order_failed',
                    'tunnel_opened', 'tunnel_closed', 'path_up', 'path_down', 'path_switched', 'keys_rotated', 'key_expired'))`.execute(db);
}
