import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, migrateToLatest, type Kysely } from '@switchyard/db';
import { createTestDatabase, type TestDatabase } from '@switchyard/testkit';
import { claimKey, finishKey, IDEMPOTENCY_TTL_MS, releaseKey, sweepExpiredKeys } from '../src/idempotency/store.js';
import { migrations } from '../src/migrations.js';
import type { Database } from '../src/tables.js';

// Integration: the records against a real Postgres database (TEST_DATABASE_URL).
describe('Idempotency-Key records', () => {
  let database: TestDatabase;
  let db: Kysely<Database>;
  beforeAll(async () => {
    database = await createTestDatabase();
    db = createDb<Database>(database.url, { max: 8, applicationName: 'idempotency-test' });
    await migrateToLatest(db, { migrations, table: 'api_gateway_migrations' });
  });
  afterAll(async () => {
    await db?.destroy();
    await database?.drop();
  });

  const input = (tenantId: string, key = 'k', fingerprint = 'fp') => ({ tenantId, key, fingerprint, ttlMs: IDEMPOTENCY_TTL_MS, inFlightMs: 60_000 });
  const response = { status: 201, headers: { 'content-type': 'application/json' }, body: '{"ok":true}', sealed: false };

  it('lets exactly one of many simultaneous requests hold a key', async () => {
    const tenantId = randomUUID();
    const claims = await Promise.all(Array.from({ length: 8 }, () => claimKey(db, input(tenantId))));
    expect(claims.filter((c) => c.kind === 'claimed')).toHaveLength(1);
    expect(claims.filter((c) => c.kind === 'in_flight')).toHaveLength(7);
  });

  it('lets only the holder finish or free the key, and not once its claim was taken over', async () => {
    const tenantId = randomUUID();
    const first = await claimKey(db, input(tenantId));
    if (first.kind !== 'claimed') throw new Error(`expected a claim, got ${first.kind}`);
    await releaseKey(db, tenantId, 'k', randomUUID());
    expect((await claimKey(db, input(tenantId))).kind).toBe('in_flight');
    await database.query(`update idempotency_keys set locked_at = now() - interval '61 seconds' where tenant_id = $1`, [tenantId]);
    const second = await claimKey(db, input(tenantId));
    expect(second).toMatchObject({ kind: 'claimed', takenOver: true });
    expect(await finishKey(db, tenantId, 'k', first.token, 202, response)).toBe(false);
    expect(await finishKey(db, tenantId, 'k', (second as { token: string }).token, 201, response)).toBe(true);
    expect(await claimKey(db, input(tenantId))).toEqual({ kind: 'done', response });
    expect(await claimKey(db, input(tenantId, 'k', 'other'))).toEqual({ kind: 'mismatch' });
  });

  it('sweeps expired records a bounded batch at a time, oldest first, and nothing younger', async () => {
    const tenantId = randomUUID();
    for (let i = 0; i < 5; i++) {
      await claimKey(db, input(tenantId, `old-${i}`));
      await database.query(`update idempotency_keys set created_at = now() - interval '25 hours' - make_interval(mins => $3) where tenant_id = $1 and key = $2`, [
        tenantId,
        `old-${i}`,
        i,
      ]);
    }
    await claimKey(db, input(tenantId, 'young'));
    await database.query(`update idempotency_keys set created_at = now() - interval '23 hours' where tenant_id = $1 and key = 'young'`, [tenantId]);
    const keys = async () => (await database.query<{ key: string }>('select key from idempotency_keys where tenant_id = $1 order by key', [tenantId])).map((r) => r.key);

    expect(await sweepExpiredKeys(db, IDEMPOTENCY_TTL_MS, 2)).toBe(2);
    expect(await keys()).toEqual(['old-0', 'old-1', 'old-2', 'young']);
    expect(await sweepExpiredKeys(db, IDEMPOTENCY_TTL_MS, 10)).toBe(3);
    expect(await keys()).toEqual(['young']);
    expect(await sweepExpiredKeys(db, IDEMPOTENCY_TTL_MS, 10)).toBe(0);
  });
});
