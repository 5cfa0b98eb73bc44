/**
 * Proxy users: credentials a tenant creates for the clients of the load balancer's exit-pool
 * front door. The gateway generates each password, answers it once, and stores only its
 * scrypt hash; the load balancers learn the hashes from `proxyuser.evt.*` and the snapshot.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { PROXY_USER_NAME, type Payload, type ProxyUserHash, type ProxyUserView, type ReplyOf } from '@switchyard/contracts';
import type { Kysely } from '@switchyard/db';
import { enqueueEvent } from './outbox.js';
import { hashPassword } from '@switchyard/secrets';
import type { Database, ProxyUser } from './tables.js';

type Db = Kysely<Database>;

export function generateProxyPassword(): string {
  return `pu_${randomBytes(24).toString('base64url')}`;
}

/** The password is 192 random bits: the hash's cost guards only a leaked table; each load balancer runs it once per user and password, then caches. */
export async function hashProxyPassword(password: string): Promise<ProxyUserHash> {
  return { algorithm: 'scrypt', ...(await hashPassword(password)) };
}

/** Why a name cannot be a proxy user's, or undefined when it can. */
export function proxyUserNameIssue(name: string): string | undefined {
  if (PROXY_USER_NAME.test(name)) return undefined;
  if (/^(country|region|session)$/.test(name)) return `"${name}" is a keyword of the proxy username grammar`;
  if (name.includes('-')) return 'may not contain "-": the proxy username separates routing keywords with it';
  return 'lower-case letters, digits and underscores, 1-32 characters, starting with a letter or digit';
}

export function viewOf(row: ProxyUser): ProxyUserView {
  return {
    tenantId: row.tenant_id,
    userId: row.id,
    name: row.name,
    hash: { algorithm: row.algorithm, n: row.cost_n, r: row.cost_r, p: row.cost_p, salt: row.salt, hash: row.hash },
    createdAt: row.created_at.toISOString(),
  };
}

export type Created = { user: ProxyUser; password: string } | 'name_taken' | { limit: number };

async function liveCount(db: Db, tenantId: string): Promise<number> {
  const { live } = await db
    .selectFrom('proxy_users')
    .select((eb) => eb.fn.countAll<string>().as('live'))
    .where('tenant_id', '=', tenantId)
    .where('revoked_at', 'is', null)
    .executeTakeFirstOrThrow();
  return Number(live);
}

export async function createProxyUser(db: Db, tenantId: string, name: string, limit: number): Promise<Created> {
  // A tenant at its limit costs no scrypt; the count under the lock below is the one that holds.
  if ((await liveCount(db, tenantId)) >= limit) return { limit };
  const password = generateProxyPassword();
  // Hashed before the transaction, so no lock is held while scrypt runs.
  const hash = await hashProxyPassword(password);
  return db.transaction().execute(async (tx) => {
    // One creation per tenant at a time: two at once could otherwise both pass the limit.
    await tx.selectFrom('tenants').select('id').where('id', '=', tenantId).forUpdate().executeTakeFirst();
    if ((await liveCount(tx, tenantId)) >= limit) return { limit };
    const user = await tx
      .insertInto('proxy_users')
      .values({
        tenant_id: tenantId,
        id: randomUUID(),
        name,
        algorithm: hash.algorithm,
        cost_n: hash.n,
        cost_r: hash.r,
        cost_p: hash.p,
        salt: hash.salt,
        hash: hash.hash,
        revoked_at: null,
      })
      .onConflict((oc) => oc.columns(['tenant_id', 'name']).where('revoked_at', 'is', null).doNothing())
      .returningAll()
      .executeTakeFirst();
    if (!user) return 'name_taken' as const;
    await enqueueEvent(tx, tenantId, 'proxyuser.evt.created', viewOf(user));
    return { user, password };
  });
}

/** False when the tenant has no live user with this id (another tenant's is just as absent). */
export async function revokeProxyUser(db: Db, tenantId: string, userId: string): Promise<boolean> {
  return db.transaction().execute(async (tx) => {
    const row = await tx
      .updateTable('proxy_users')
      .set({ revoked_at: new Date() })
      .where('tenant_id', '=', tenantId)
      .where('id', '=', userId)
      .where('revoked_at', 'is', null)
      .returning(['name', 'revoked_at'])
      .executeTakeFirst();
    if (!row) return false;
    await enqueueEvent(tx, tenantId, 'proxyuser.evt.revoked', { tenantId, userId, name: row.name, at: row.revoked_at!.toISOString() });
    return true;
  });
}

export async function listProxyUsers(db: Db, tenantId: string): Promise<ProxyUser[]> {
  return db.selectFrom('proxy_users').selectAll().where('tenant_id', '=', tenantId).where('revoked_at', 'is', null).orderBy('name').execute();
}

/** ~300 bytes each: a page stays well within NATS's 1 MiB default message size. */
export const SNAPSHOT_PAGE = 1000;

/** proxyuser.req.snapshot: every tenant's live users, a page at a time in id order. */
export async function proxyUserSnapshot(db: Db, p: Payload<'proxyuser.req.snapshot'>, page = SNAPSHOT_PAGE): Promise<ReplyOf<'proxyuser.req.snapshot'>> {
  let q = db.selectFrom('proxy_users').selectAll().where('revoked_at', 'is', null);
  if (p.after) q = q.where('id', '>', p.after);
  const rows = await q
    .orderBy('id')
    .limit(page + 1)
    .execute();
  return { users: rows.slice(0, page).map(viewOf), more: rows.length > page };
}
