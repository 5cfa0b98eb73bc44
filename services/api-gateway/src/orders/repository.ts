/**
 * Orders and their commands in the database. Every function takes the database or a
 * transaction; one that writes more than a row joins the caller's transaction when given one.
 */
import { randomUUID } from 'node:crypto';
import { currentTraceparent } from '@switchyard/bus';
import { sql, type Kysely, type Transaction } from '@switchyard/db';
import { IDEMPOTENCY_TTL_MS } from '../idempotency/store.js';
import { orderSecrets, type OrderSecrets } from '../secrets.js';
import type { Database, Order } from '../tables.js';
import { commandFor, type Command } from './commands.js';
import type { AnyOrderRequest } from './schemas.js';

type Db = Kysely<Database>;

function inTransaction<T>(db: Db, work: (tx: Transaction<Database>) => Promise<T>): Promise<T> {
  return db.isTransaction ? work(db as Transaction<Database>) : db.transaction().execute(work);
}

/**
 * Stores the order and its command in one transaction: once this commits the command will
 * be published by the outbox relay, whatever happens to this process. With an idempotency
 * key, a retry of the same request returns the order placed first (`replayed`), and the same
 * key with another request is refused, for IDEMPOTENCY_TTL_MS. This is the transactional half
 * of Idempotency-Key: it holds even when the route's record (idempotency/) was lost. Secrets are sealed before either is written; without
 * `secrets` (SECRETS_KEY) an order that has some is refused.
 */
export async function placeOrder(
  db: Db,
  tenantId: string,
  request: AnyOrderRequest,
  idempotencyKey?: string,
  secrets: OrderSecrets = orderSecrets(undefined),
): Promise<{ order: Order; replayed: boolean } | 'key_reused'> {
  const id = randomUUID();
  const sealed = secrets.seal(request);
  const { command, result } = commandFor(id, tenantId, sealed);
  return inTransaction(db, async (tx) => {
    // A key older than IDEMPOTENCY_TTL_MS is free for a new order: the old order lets go of it.
    if (idempotencyKey !== undefined) await releaseExpiredOrderKey(tx, tenantId, idempotencyKey);
    const order = await tx
      .insertInto('orders')
      .values({
        tenant_id: tenantId,
        id,
        type: request.type,
        status: 'accepted',
        request: JSON.stringify(sealed),
        result: JSON.stringify(result),
        reason: null,
        idempotency_key: idempotencyKey ?? null,
      })
      .onConflict((oc) => oc.columns(['tenant_id', 'idempotency_key']).where('idempotency_key', 'is not', null).doNothing())
      .returningAll()
      .executeTakeFirst();
    if (!order) {
      const earlier = await orderByKey(tx, tenantId, idempotencyKey!, request);
      return earlier.sameRequest && secrets.same(earlier.order.request, request) ? { order: earlier.order, replayed: true } : 'key_reused';
    }
    await enqueueCommand(tx, tenantId, command);
    return { order, replayed: false };
  });
}

async function releaseExpiredOrderKey(db: Db, tenantId: string, key: string): Promise<void> {
  await db
    .updateTable('orders')
    .set({ idempotency_key: null })
    .where('tenant_id', '=', tenantId)
    .where('idempotency_key', '=', key)
    .where('created_at', '<', sql<Date>`now() - make_interval(secs => ${IDEMPOTENCY_TTL_MS / 1000})`)
    .execute();
}

/**
 * The order placed first with a key, and whether it was placed with this request, secrets
 * aside: sealed afresh each time, they are compared by the caller once opened.
 */
async function orderByKey(db: Db, tenantId: string, key: string, request: AnyOrderRequest): Promise<{ order: Order; sameRequest: boolean }> {
  // jsonb equality ignores key order and whitespace: the same request, however sent. The
  // secrets are taken out here, not in SQL: a bound parameter can end up in Postgres's logs.
  const { same_request, ...order } = await db
    .selectFrom('orders')
    .selectAll()
    .select(sql<boolean>`request #- '{pool,secretEnv}' = ${JSON.stringify(withoutSecrets(request))}::jsonb`.as('same_request'))
    .where('tenant_id', '=', tenantId)
    .where('idempotency_key', '=', key)
    .executeTakeFirstOrThrow();
  return { order, sameRequest: same_request };
}

function withoutSecrets(request: AnyOrderRequest): AnyOrderRequest {
  if (!('pool' in request) || !request.pool?.secretEnv) return request;
  const { secretEnv: _, ...pool } = request.pool;
  return { ...request, pool };
}

/** Queues a command for the outbox relay, under the trace of the current request. */
async function enqueueCommand(db: Db, tenantId: string, command: Command): Promise<void> {
  await db
    .insertInto('outbox')
    .values({
      tenant_id: tenantId,
      id: randomUUID(),
      subject: command.subject,
      payload: JSON.stringify(command.payload),
      traceparent: currentTraceparent(),
      published_at: null,
    })
    .execute();
}

/** An order the gateway places for a call of its own (no client key, so never a replay). */
export async function placeOwnOrder(db: Db, tenantId: string, request: AnyOrderRequest): Promise<Order> {
  return ((await placeOrder(db, tenantId, request)) as { order: Order }).order;
}

export async function getOrder(db: Db, tenantId: string, id: string): Promise<Order | undefined> {
  return db.selectFrom('orders').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst();
}

export async function listOrders(db: Db, tenantId: string, opts: { limit: number; before?: Date }): Promise<Order[]> {
  let q = db.selectFrom('orders').selectAll().where('tenant_id', '=', tenantId);
  if (opts.before) q = q.where('created_at', '<', opts.before);
  return q.orderBy('created_at', 'desc').orderBy('id').limit(opts.limit).execute();
}

/**
 * Applies an order event; terminal states never move back, so redeliveries are harmless. Each
 * progress report moves `updated_at`, which is what keeps long work from being swept as stale.
 */
export async function recordOrderEvent(
  db: Db,
  tenantId: string,
  orderId: string,
  change: { status: 'in_progress' } | { status: 'fulfilled'; result: Record<string, unknown> } | { status: 'failed'; reason: string },
): Promise<void> {
  const allowedFrom = ['accepted', 'in_progress'];
  await db
    .updateTable('orders')
    .set({
      status: change.status,
      updated_at: new Date(),
      ...(change.status === 'fulfilled' ? { result: JSON.stringify(change.result) } : {}),
      ...(change.status === 'failed' ? { reason: change.reason } : {}),
    })
    .where('tenant_id', '=', tenantId)
    .where('id', '=', orderId)
    .where('status', 'in', allowedFrom as Order['status'][])
    .execute();
}
