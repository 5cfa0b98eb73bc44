import { sql, type Kysely } from '@switchyard/db';

// The load balancer listens on an app pool's publicPort for every tenant at once, so two
// live pools must not claim the same one; the index makes the check race-free.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`create unique index pools_live_public_port on pools ((spec->>'publicPort')) where status <> 'deleted'`.execute(db);
}
