import { randomBytes } from 'node:crypto';
import { createDb, migrateToLatest, type Kysely } from '@switchyard/db';
import { createTestDatabase, type TestDatabase } from '@switchyard/testkit';
import { ensureAdmin } from '../src/keys.js';
import { migrations } from '../src/migrations.js';
import type { Database } from '../src/tables.js';
import { testApp } from './fakes.js';

export const ADMIN_KEY = `admin-key-${'x'.repeat(24)}`;

/**
 * The app over a fresh Postgres database of its own, migrated as the gateway does at start,
 * with the admin key of its config; NATS queries go to the fake bus (only the pool snapshot answers).
 */
export async function startDatabaseApp() {
  const database: TestDatabase = await createTestDatabase();
  const db: Kysely<Database> = createDb<Database>(database.urlFor('api-gateway'), { max: 4, applicationName: 'api-gateway-test' });
  await migrateToLatest(db, { migrations, table: 'api_gateway_migrations' });
  await ensureAdmin(db, 'admin', ADMIN_KEY);
  let placed = 0;
  const { app } = testApp(
    // Members' pool orders ask exit-node-manager what the tenant holds (the quotas): nothing yet.
    { 'pool.req.snapshot': () => ({ pools: [], nodes: [] }) },
    {
      db,
      onOrderPlaced: () => {
        placed++;
      },
    },
  );
  await app.ready();

  const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

  return {
    app,
    database,
    db,
    /** How often the app asked for an early outbox run (once per order it placed). */
    placed: () => placed,
    bearer,
    /** A tenant of the test's own, with its member key, made through POST /v1/tenants. */
    async newTenant(prefix = 't'): Promise<{ id: string; name: string; key: string }> {
      const name = `${prefix}-${randomBytes(4).toString('hex')}`;
      const res = await app.inject({ method: 'POST', url: '/v1/tenants', headers: bearer(ADMIN_KEY), payload: { name } });
      if (res.statusCode !== 201) throw new Error(`tenant ${name}: ${res.statusCode} ${res.body}`);
      const body = res.json<{ id: string; apiKey: string }>();
      return { id: body.id, name, key: body.apiKey };
    },
    async close() {
      await app.close();
      await db.destroy();
      await database.drop();
    },
  };
}
export type DatabaseApp = Awaited<ReturnType<typeof startDatabaseApp>>;
