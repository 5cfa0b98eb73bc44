/**
 * Tenants' ACL policies: the gateway stores each tenant's policy (the text as put and the
 * document parsed from it) and tells the enforcers (load balancer, socket activator) of every
 * change through the outbox, so a change committed is a change announced, a crash included.
 */
import type { AclPolicy, AclPolicyView } from '@switchyard/contracts';
import type { Kysely } from '@switchyard/db';
import { enqueueEvent } from './outbox.js';
import type { AclPolicyRow, Database } from './tables.js';

type Db = Kysely<Database>;

export async function currentPolicy(db: Db, tenantId: string): Promise<AclPolicyRow | undefined> {
  return db.selectFrom('acl_policies').selectAll().where('tenant_id', '=', tenantId).executeTakeFirst();
}

/**
 * Stores a tenant's policy (or its removal, `next` null) at the version after the current one,
 * and queues acl.evt.changed in the same transaction. Changes of one tenant are serialized by
 * the row lock, so two puts never share a version. Undefined when there was nothing to remove.
 */
export async function writePolicy(db: Db, tenantId: string, next: { source: string; document: AclPolicy } | null): Promise<AclPolicyRow | undefined> {
  return db.transaction().execute(async (tx) => {
    // The tenant's row exists before its first policy: lock it so the first two puts queue too.
    await tx.selectFrom('tenants').select('id').where('id', '=', tenantId).forUpdate().executeTakeFirst();
    const now = await tx.selectFrom('acl_policies').select(['version', 'source']).where('tenant_id', '=', tenantId).forUpdate().executeTakeFirst();
    if (next === null && (now === undefined || now.source === null)) return undefined;
    const version = (now?.version ?? 0) + 1;
    const values = { source: next?.source ?? null, document: next ? JSON.stringify(next.document) : null, version, updated_at: new Date() };
    const row = await tx
      .insertInto('acl_policies')
      .values({ tenant_id: tenantId, ...values })
      .onConflict((oc) => oc.column('tenant_id').doUpdateSet(values))
      .returningAll()
      .executeTakeFirstOrThrow();
    await enqueueEvent(tx, tenantId, 'acl.evt.changed', viewOf(row));
    return row;
  });
}

export function viewOf(row: AclPolicyRow): AclPolicyView {
  return { tenantId: row.tenant_id, version: row.version, policy: row.document };
}

/** acl.req.snapshot's one read: every tenant's policy at its version (removed ones as null), or one tenant's. */
export async function policyViews(db: Db, tenantId: string | undefined): Promise<AclPolicyView[]> {
  let q = db.selectFrom('acl_policies').selectAll();
  if (tenantId !== undefined) q = q.where('tenant_id', '=', tenantId);
  return (await q.orderBy('tenant_id').execute()).map(viewOf);
}
