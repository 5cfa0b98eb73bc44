import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { sql, type Kysely, type Transaction } from '@switchyard/db';
import { normalize, type Scope } from './scopes.js';
import type { ApiKey, Database } from './tables.js';

/** A key is `sy_` + 192 random bits; only its hash is stored. */
function generateApiKey(): string {
  return `sy_${randomBytes(24).toString('base64url')}`;
}

function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/** `sy_` and 8 characters: enough to tell keys apart in a listing, 48 bits short of guessable. */
const prefixOf = (key: string) => key.slice(0, 11);

export interface Caller {
  tenantId: string;
  tenantName: string;
  role: 'admin' | 'member';
  scopes: Scope[];
  /** The key the call came with; absent for the compat surface's Basic account. */
  keyId?: string;
  /** When that key expires; null: never. */
  expiresAt?: Date | null;
}

export type KeyCheck = { caller: Caller } | { refused: string };

/**
 * The caller a key stands for, or why it is refused: unknown, revoked, or expired (a rotated
 * key expires at the end of its overlap, and the answer says so).
 */
export async function checkKey(db: Kysely<Database>, key: string, now = new Date()): Promise<KeyCheck> {
  const row = await db
    .selectFrom('api_keys')
    .innerJoin('tenants', 'tenants.id', 'api_keys.tenant_id')
    .select([
      'api_keys.id as keyId',
      'api_keys.tenant_id as tenantId',
      'tenants.name as tenantName',
      'api_keys.role as role',
      'api_keys.scopes as scopes',
      'api_keys.revoked_at as revokedAt',
      'api_keys.expires_at as expiresAt',
      'api_keys.replaced_by as replacedBy',
    ])
    .where('api_keys.key_hash', '=', hashApiKey(key))
    .executeTakeFirst();
  if (!row) return { refused: 'unknown API key' };
  if (row.revokedAt) return { refused: `API key revoked at ${row.revokedAt.toISOString()}` };
  if (row.expiresAt && row.expiresAt <= now) {
    const rotated = row.replacedBy ? `; it was rotated into key ${row.replacedBy}, use that one` : '';
    return { refused: `API key expired at ${row.expiresAt.toISOString()}${rotated}` };
  }
  return { caller: { tenantId: row.tenantId, tenantName: row.tenantName, role: row.role, scopes: row.scopes, keyId: row.keyId, expiresAt: row.expiresAt } };
}

/**
 * Records when each key was last used, at most once a minute per key and process: a busy key
 * costs one UPDATE a minute, not one per request. The UPDATE's own condition keeps several
 * gateway processes near that rate too. Failures are logged, never a caller's problem.
 */
export function lastUsedRecorder(db: Kysely<Database>, log: { warn(o: object, m: string): void }, everyMs = 60_000) {
  const written = new Map<string, number>();
  return (tenantId: string, keyId: string, now = Date.now()): void => {
    const last = written.get(keyId);
    if (last !== undefined && now - last < everyMs) return;
    // Bounded: forgetting every key at once only costs one extra write per key.
    if (written.size >= 10_000) written.clear();
    written.set(keyId, now);
    db.updateTable('api_keys')
      .set({ last_used_at: sql`now()` })
      .where('tenant_id', '=', tenantId)
      .where('id', '=', keyId)
      .where((eb) => eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<', sql<Date>`now() - make_interval(secs => ${everyMs / 1000})`)]))
      .execute()
      .catch((err: Error) => log.warn({ err: err.message, keyId }, 'last-used time not written'));
  };
}

const CONFIG_KEY_NAME = 'admin (from config)';

/**
 * Makes sure the configured admin key opens the admin tenant, and that it is the only config
 * key: a changed ADMIN_API_KEY revokes the one before it. Idempotent, so every start (and every
 * replica) can run it.
 */
export async function ensureAdmin(db: Kysely<Database>, tenantName: string, adminKey: string): Promise<string> {
  return db.transaction().execute(async (tx) => {
    await tx
      .insertInto('tenants')
      .values({ id: randomUUID(), name: tenantName })
      .onConflict((oc) => oc.column('name').doNothing())
      .execute();
    const tenant = await tx.selectFrom('tenants').select('id').where('name', '=', tenantName).executeTakeFirstOrThrow();
    const hash = hashApiKey(adminKey);
    await tx.updateTable('api_keys').set({ revoked_at: sql`now()` }).where('from_config', '=', true).where('key_hash', '<>', hash).where('revoked_at', 'is', null).execute();
    await tx
      .insertInto('api_keys')
      .values({
        tenant_id: tenant.id,
        id: randomUUID(),
        name: CONFIG_KEY_NAME,
        key_hash: hash,
        prefix: prefixOf(adminKey),
        role: 'admin',
        scopes: ['admin'],
        from_config: true,
        expires_at: null,
        created_by: null,
        replaced_by: null,
        last_used_at: null,
        revoked_at: null,
      })
      // A config key set back to an earlier value is the operator's choice: it opens again.
      .onConflict((oc) => oc.column('key_hash').doUpdateSet({ revoked_at: null, expires_at: null }).where('api_keys.from_config', '=', true))
      .execute();
    return tenant.id;
  });
}

export interface NewKey {
  tenantId: string;
  name: string;
  scopes: Scope[];
  expiresAt: Date;
  /** The key of the caller who asked; null for a tenant's first key. */
  createdBy: string | null;
}

async function insertKey(tx: Transaction<Database> | Kysely<Database>, k: NewKey): Promise<{ row: ApiKey; apiKey: string }> {
  const apiKey = generateApiKey();
  const scopes = normalize(k.scopes);
  const row = await tx
    .insertInto('api_keys')
    .values({
      tenant_id: k.tenantId,
      id: randomUUID(),
      name: k.name,
      key_hash: hashApiKey(apiKey),
      prefix: prefixOf(apiKey),
      role: scopes.includes('admin') ? 'admin' : 'member',
      scopes,
      expires_at: k.expiresAt,
      created_by: k.createdBy,
      replaced_by: null,
      last_used_at: null,
      revoked_at: null,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return { row, apiKey };
}

/** Keys that still open the API: not revoked, not expired. */
const live = (now: Date) => sql<boolean>`revoked_at is null and (expires_at is null or expires_at > ${now})`;

/** One tenant's keys at a time, so the per-tenant bound holds against concurrent creates. */
async function lockTenantKeys(tx: Transaction<Database>, tenantId: string): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtext('api_keys:' || ${tenantId}))`.execute(tx);
}

async function liveCount(tx: Transaction<Database>, tenantId: string, now: Date): Promise<number> {
  const { count } = await tx
    .selectFrom('api_keys')
    .select((eb) => eb.fn.countAll<string>().as('count'))
    .where('tenant_id', '=', tenantId)
    .where(live(now))
    .executeTakeFirstOrThrow();
  return Number(count);
}

export async function createKey(db: Kysely<Database>, k: NewKey, perTenant: number, now = new Date()): Promise<{ row: ApiKey; apiKey: string } | { limit: number }> {
  return db.transaction().execute(async (tx) => {
    await lockTenantKeys(tx, k.tenantId);
    if ((await liveCount(tx, k.tenantId, now)) >= perTenant) return { limit: perTenant };
    return insertKey(tx, k);
  });
}

export async function createTenant(db: Kysely<Database>, name: string, expiresAt: Date): Promise<{ tenantId: string; apiKey: string } | 'exists'> {
  const tenantId = randomUUID();
  return db.transaction().execute(async (tx) => {
    const inserted = await tx
      .insertInto('tenants')
      .values({ id: tenantId, name })
      .onConflict((oc) => oc.column('name').doNothing())
      .returning('id')
      .executeTakeFirst();
    if (!inserted) return 'exists' as const;
    const { apiKey } = await insertKey(tx, { tenantId, name: 'first key', scopes: ['write'], expiresAt, createdBy: null });
    return { tenantId, apiKey };
  });
}

/** A key by id: within one tenant, or (tenantId undefined, for an admin) in any. */
export async function getKey(db: Kysely<Database>, tenantId: string | undefined, id: string): Promise<ApiKey | undefined> {
  let q = db.selectFrom('api_keys').selectAll().where('id', '=', id);
  if (tenantId !== undefined) q = q.where('tenant_id', '=', tenantId);
  return q.executeTakeFirst();
}

export async function listKeys(db: Kysely<Database>, tenantId: string, opts: { includeDead: boolean; now?: Date }): Promise<ApiKey[]> {
  let q = db.selectFrom('api_keys').selectAll().where('tenant_id', '=', tenantId);
  if (!opts.includeDead) q = q.where(live(opts.now ?? new Date()));
  return q.orderBy('created_at', 'desc').orderBy('id').limit(1000).execute();
}

export type KeyChangeRefusal = 'gone' | 'config_key' | 'already_rotated' | 'not_live' | 'limit';

/**
 * Issues a successor with the same name and scopes; the old key stays valid until `overlapUntil`
 * (never later than it would have anyway). Rotating a key twice is refused: one successor each.
 * The successor counts against the tenant's live keys, or chains of rotations would hold any
 * number of keys alive through their overlaps.
 */
export async function rotateKey(
  db: Kysely<Database>,
  old: ApiKey,
  opts: { overlapUntil: Date; expiresAt: Date; createdBy: string | null; perTenant: number; now?: Date },
): Promise<{ row: ApiKey; apiKey: string; old: ApiKey } | KeyChangeRefusal> {
  const now = opts.now ?? new Date();
  return db.transaction().execute(async (tx) => {
    await lockTenantKeys(tx, old.tenant_id);
    const current = await tx.selectFrom('api_keys').selectAll().where('tenant_id', '=', old.tenant_id).where('id', '=', old.id).forUpdate().executeTakeFirst();
    if (!current) return 'gone' as const;
    if (current.from_config) return 'config_key' as const;
    if (current.replaced_by) return 'already_rotated' as const;
    if (current.revoked_at || (current.expires_at && current.expires_at <= now)) return 'not_live' as const;
    if ((await liveCount(tx, current.tenant_id, now)) >= opts.perTenant) return 'limit' as const;
    const next = await insertKey(tx, { tenantId: current.tenant_id, name: current.name, scopes: current.scopes, expiresAt: opts.expiresAt, createdBy: opts.createdBy });
    const until = current.expires_at && current.expires_at < opts.overlapUntil ? current.expires_at : opts.overlapUntil;
    const updated = await tx
      .updateTable('api_keys')
      .set({ expires_at: until, replaced_by: next.row.id })
      .where('tenant_id', '=', current.tenant_id)
      .where('id', '=', current.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    return { ...next, old: updated };
  });
}

export async function revokeKey(db: Kysely<Database>, key: ApiKey): Promise<ApiKey | KeyChangeRefusal> {
  if (key.from_config) return 'config_key';
  const row = await db
    .updateTable('api_keys')
    // Revoking twice keeps the first time.
    .set({ revoked_at: sql`coalesce(revoked_at, now())` })
    .where('tenant_id', '=', key.tenant_id)
    .where('id', '=', key.id)
    .returningAll()
    .executeTakeFirst();
  return row ?? 'gone';
}

export type KeyStatus = 'active' | 'expired' | 'revoked';
export const statusOf = (k: ApiKey, now = new Date()): KeyStatus => (k.revoked_at ? 'revoked' : k.expires_at && k.expires_at <= now ? 'expired' : 'active');
