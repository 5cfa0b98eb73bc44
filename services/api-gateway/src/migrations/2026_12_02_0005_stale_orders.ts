import { sql, type Kysely } from '@switchyard/db';

// Frozen once shipped. The gateway fails orders nobody finished (orders/sweeper.ts): it finds
// them by their last change, and says so on the timeline as `order_failed`.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`create index orders_open_by_update on orders (updated_at) where status in ('accepted', 'in_progress')`.execute(db);
  await sql`alter table activity drop constraint activity_kind_check`.execute(db);
  await sql`alter table activity add constraint activity_kind_check
    check (kind in ('slept', 'woke', 'wake_failed', 'policy_changed', 'started', 'stopped', 'died', 'removed', 'draining', 'order_failed'))`.execute(db);
}
