import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Kysely } from '@switchyard/db';
import type { Database } from './tables.js';

/** A key is `sy_` + 192 random bits; only its hash is stored. */
function generateApiKey(): string {
  return `sy_${randomBytes(24).toString('base64url')}`;
}

function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

export interface Caller {
  tenantId: string;
  tenantName: string;
  role: 'admin' | 'member';
}

export async function findCaller(db: Kysely<Database>, key: string): Promise<Caller | undefined> {
  const row = await db
    .selectFrom('api_keys')
    .innerJoin('tenants', 'tenants.id', 'api_keys.tenant_id')
    .select(['api_keys.tenant_id as tenantId', 'tenants.name as tenantName', 'api_keys.role as role'])
    .where('api_keys.key_hash', '=', hashApiKey(key))
    .where('api_keys.revoked_at', 'is', null)
    .executeTakeFirst();
  return row;
}

/**
 * Makes sure the configured admin key opens the admin tenant. Idempotent, so every start
 * (and every replica) can run it; a changed ADMIN_API_KEY adds the new key beside the old.
 */
export async function ensureAdmin(db: Kysely<Database>, tenantName: string, adminKey: string): Promise<string> {
  return db.transaction().execute(async (tx) => {
    await tx
      .insertInto('tenants')
      .values({ id: randomUUID(), name: tenantName })
      .onConflict((oc) => oc.column('name').doNothing())
      .execute();
    const tenant = await tx.selectFrom('tenants').select('id').where('name', '=', tenantName).executeTakeFirstOrThrow();
    await tx
      .insertInto('api_keys')
      .values({ tenant_id: tenant.id, id: randomUUID(), name: 'admin (from config)', key_hash: hashApiKey(adminKey), role: 'admin', revoked_at: null })
      .onConflict((oc) => oc.column('key_hash').doNothing())
      .execute();
    return tenant.id;
  });
}

export async function createTenant(db: Kysely<Database>, name: string): Promise<{ tenantId: string; apiKey: string } | 'exists'> {
  const apiKey = generateApiKey();
  const tenantId = randomUUID();
  return db.transaction().execute(async (tx) => {
    const inserted = await tx
      .insertInto('tenants')
      .values({ id: tenantId, name })
      .onConflict((oc) => oc.column('name').doNothing())
      .returning('id')
      .executeTakeFirst();
    if (!inserted) return 'exists' as const;
    await tx
      .insertInto('api_keys')
      .values({ tenant_id: tenantId, id: randomUUID(), name: 'first key', key_hash: hashApiKey(apiKey), role: 'member', revoked_at: null })
      .execute();
    return { tenantId, apiKey };
  });
}
