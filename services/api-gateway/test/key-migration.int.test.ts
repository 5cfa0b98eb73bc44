import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomUUID } from 'node:crypto';
import { createDb, migrateToLatest, type Kysely } from '@switchyard/db';
import { createTestDatabase, type TestDatabase } from '@switchyard/testkit';
import { checkKey, ensureAdmin } from '../src/keys.js';
import { migrations } from '../src/migrations.js';
import type { Database } from '../src/tables.js';

// Integration: a real Postgres database (TEST_DATABASE_URL). Keys made before migration 0007
// keep working after it, with the scopes it gives them, and the config keys of earlier starts
// (ensureAdmin used to add a changed ADMIN_API_KEY beside the old one) are found and revoked.

const sha = (key: string) => createHash('sha256').update(key).digest('hex');
const before0007 = Object.fromEntries(Object.entries(migrations).filter(([name]) => name < '2026_12_07_0007'));

describe('migration 0007 over keys made before it', () => {
  let database: TestDatabase;
  let db: Kysely<Database>;
  const tenantId = randomUUID();
  const adminTenantId = randomUUID();

  beforeAll(async () => {
    database = await createTestDatabase();
    db = createDb<Database>(database.url, { max: 2, applicationName: 'api-gateway-test' });
    expect(Object.keys(before0007)).toHaveLength(6);
    await migrateToLatest(db, { migrations: before0007, table: 'api_gateway_migrations' });
    await database.query(`insert into tenants (id, name) values ($1, 'admin'), ($2, 'acme')`, [adminTenantId, tenantId]);
    const insert = `insert into api_keys (tenant_id, id, name, key_hash, role) values ($1, $2, $3, $4, $5)`;
    await database.query(insert, [adminTenantId, randomUUID(), 'admin (from config)', sha('old-config-key-xxxxxxxxxxxxxxx'), 'admin']);
    await database.query(insert, [adminTenantId, randomUUID(), 'admin (from config)', sha('current-config-key-xxxxxxxxxxx'), 'admin']);
    await database.query(insert, [tenantId, randomUUID(), 'first key', sha('sy_member-key'), 'member']);
    await migrateToLatest(db, { migrations, table: 'api_gateway_migrations' });
  });
  afterAll(async () => {
    await db?.destroy();
    await database?.drop();
  });

  it('keeps member keys working with `write` and no expiry', async () => {
    const checked = await checkKey(db, 'sy_member-key');
    expect(checked).toEqual({ caller: { tenantId, tenantName: 'acme', role: 'member', scopes: ['write'], keyId: expect.any(String), expiresAt: null } });
    const [row] = await database.query('select expires_at, prefix, from_config from api_keys where tenant_id = $1', [tenantId]);
    expect(row).toEqual({ expires_at: null, prefix: null, from_config: false });
  });

  it('marks the config keys, and the next start revokes all but the configured one', async () => {
    expect((await checkKey(db, 'old-config-key-xxxxxxxxxxxxxxx')) as object).toHaveProperty('caller.scopes', ['admin']);
    await ensureAdmin(db, 'admin', 'current-config-key-xxxxxxxxxxx');
    expect(await checkKey(db, 'old-config-key-xxxxxxxxxxxxxxx')).toEqual({ refused: expect.stringMatching(/^API key revoked at /) });
    expect(await checkKey(db, 'current-config-key-xxxxxxxxxxx')).toHaveProperty('caller.role', 'admin');
    expect(await checkKey(db, 'sy_member-key')).toHaveProperty('caller.scopes', ['write']);
    const config = await database.query('select count(*)::int as n from api_keys where from_config');
    expect(config).toEqual([{ n: 2 }]);
  });

  it('refuses a row with an unknown or empty scope set', async () => {
    const insert = `insert into api_keys (tenant_id, id, name, key_hash, role, scopes) values ($1, $2, 'x', $3, 'member', $4)`;
    await expect(database.query(insert, [tenantId, randomUUID(), sha('a'), ['root']])).rejects.toThrow(/api_keys_scopes_known/);
    await expect(database.query(insert, [tenantId, randomUUID(), sha('b'), []])).rejects.toThrow(/api_keys_scopes_known/);
  });
});
