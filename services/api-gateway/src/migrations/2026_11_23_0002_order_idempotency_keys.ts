import { sql, type Kysely } from '@switchyard/db';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('orders').addColumn('idempotency_key', 'text').execute();
  await sql`create unique index orders_idempotency_key on orders (tenant_id, idempotency_key) where idempotency_key is not null`.execute(db);
}
