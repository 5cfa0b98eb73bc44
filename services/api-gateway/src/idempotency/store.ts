/**
 * Idempotency records in the database: claimed when a request with a key starts, finished
 * with the response it got, released when it was refused. Every function takes the database.
 */
import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from '@switchyard/db';
import type { Database, IdempotencyRecord } from '../tables.js';

type Db = Kysely<Database>;

/** How long a key is remembered; after that the same key is a new request. */
export const IDEMPOTENCY_TTL_MS = 24 * 3_600_000;

export interface StoredResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  sealed: boolean;
}

export type Claim =
  /** This request holds the key; `takenOver` when a stale holder's claim was taken. */
  | { kind: 'claimed'; token: string; takenOver: boolean }
  /** Another request with the key has not finished. */
  | { kind: 'in_flight' }
  /** The key was used for another request (method, path or body). */
  | { kind: 'mismatch' }
  /** The first request succeeded; 'withheld' when its answer held a secret that could not be kept sealed. */
  | { kind: 'done'; response: StoredResponse | 'withheld' };

export interface ClaimInput {
  tenantId: string;
  key: string;
  fingerprint: string;
  ttlMs: number;
  /** An in-flight claim older than this belongs to a holder that crashed or hangs: it is taken over. */
  inFlightMs: number;
}

const secs = (ms: number) => ms / 1000;

/**
 * One statement decides who holds the key: a new key is inserted; an expired one (any
 * request) or a stale in-flight one (the same request) is taken over; anything else is left
 * as it is and read back. A row released between the two statements is claimed on the next
 * round (three at most: each round needs a concurrent release to go on).
 */
export async function claimKey(db: Db, input: ClaimInput): Promise<Claim> {
  for (let round = 0; round < 3; round++) {
    const token = randomUUID();
    const taken = await sql<{ token: string; fresh: boolean }>`
      insert into idempotency_keys (tenant_id, key, fingerprint, state, token)
      values (${input.tenantId}, ${input.key}, ${input.fingerprint}, 'in_flight', ${token})
      on conflict (tenant_id, key) do update set
        fingerprint = excluded.fingerprint,
        state = 'in_flight',
        token = excluded.token,
        locked_at = now(),
        created_at = case when idempotency_keys.created_at < now() - make_interval(secs => ${secs(input.ttlMs)}) then now() else idempotency_keys.created_at end,
        response_status = null, response_headers = null, response_body = null, response_sealed = false, completed_at = null
      where idempotency_keys.created_at < now() - make_interval(secs => ${secs(input.ttlMs)})
         or (idempotency_keys.state = 'in_flight'
             and idempotency_keys.locked_at < now() - make_interval(secs => ${secs(input.inFlightMs)})
             and idempotency_keys.fingerprint = excluded.fingerprint)
      returning token, (xmax = 0) as fresh`.execute(db);
    const row = taken.rows[0];
    if (row?.token === token) return { kind: 'claimed', token, takenOver: !row.fresh };
    const held = await db.selectFrom('idempotency_keys').selectAll().where('tenant_id', '=', input.tenantId).where('key', '=', input.key).executeTakeFirst();
    if (!held) continue;
    return decide(held, input.fingerprint);
  }
  return { kind: 'in_flight' };
}

function decide(held: IdempotencyRecord, fingerprint: string): Claim {
  if (held.fingerprint !== fingerprint) return { kind: 'mismatch' };
  if (held.state === 'in_flight' || held.response_status === null) return { kind: 'in_flight' };
  if (held.response_body === null) return { kind: 'done', response: 'withheld' };
  return { kind: 'done', response: { status: held.response_status, headers: held.response_headers ?? {}, body: held.response_body, sealed: held.response_sealed } };
}

/**
 * Records the response of the request holding `token` (a done row without a body: 'withheld');
 * false when its claim was taken over meanwhile.
 */
export async function finishKey(db: Db, tenantId: string, key: string, token: string, status: number, response: StoredResponse | 'withheld'): Promise<boolean> {
  const kept = response === 'withheld' ? { headers: {}, body: null, sealed: false } : response;
  const done = await db
    .updateTable('idempotency_keys')
    .set({
      state: 'done',
      response_status: status,
      response_headers: JSON.stringify(kept.headers),
      response_body: kept.body,
      response_sealed: kept.sealed,
      completed_at: new Date(),
    })
    .where('tenant_id', '=', tenantId)
    .where('key', '=', key)
    .where('token', '=', token)
    .where('state', '=', 'in_flight')
    .executeTakeFirst();
  return Number(done.numUpdatedRows) === 1;
}

/** Frees the key of a request that was refused or failed: nothing was done, so a retry may try again. */
export async function releaseKey(db: Db, tenantId: string, key: string, token: string): Promise<void> {
  await db.deleteFrom('idempotency_keys').where('tenant_id', '=', tenantId).where('key', '=', key).where('token', '=', token).where('state', '=', 'in_flight').execute();
}

/**
 * Deletes at most `batch` records older than the TTL, oldest first; several gateways may
 * sweep side by side (SKIP LOCKED). Returns how many went.
 */
export async function sweepExpiredKeys(db: Db, ttlMs: number, batch: number): Promise<number> {
  const swept = await sql<{ n: string }>`
    with expired as (
      select tenant_id, key from idempotency_keys
      where created_at < now() - make_interval(secs => ${secs(ttlMs)})
      order by created_at
      limit ${batch}
      for update skip locked
    )
    delete from idempotency_keys k using expired e
    where k.tenant_id = e.tenant_id and k.key = e.key
    returning 1 as n`.execute(db);
  return swept.rows.length;
}
