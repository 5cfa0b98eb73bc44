import { randomUUID } from 'node:crypto';
import Type, { type Static } from 'typebox';
import {
  Id,
  OrderStatus,
  PoolSpec,
  poolSpecIssues,
  Timestamp,
  type CommandSubject,
  type Issue,
  type Payload,
} from '@switchyard/contracts';
import { currentTraceparent } from '@switchyard/bus';
import { sql, type Kysely, type Transaction } from '@switchyard/db';
import type { Database, Order } from './tables.js';


const NodeCount = Type.Object(
  { min: Type.Integer({ minimum: 0, maximum: 100 }), max: Type.Integer({ minimum: 1, maximum: 100 }) },
  { additionalProperties: false },
);

/** The body of POST /v1/orders. Which fields a type needs is checked by `orderIssues`. */
export const OrderRequest = Type.Object(
  {
    type: Type.Union([
      Type.Literal('pool.create'),
      Type.Literal('pool.scale'),
      Type.Literal('pool.delete'),
      Type.Literal('node.start'),
      Type.Literal('node.stop'),
      Type.Literal('node.restart'),
    ]),
    pool: Type.Optional(PoolSpec),
    poolId: Type.Optional(Id),
    nodes: Type.Optional(NodeCount),
    nodeId: Type.Optional(Id),
  },
  { additionalProperties: false },
);
export type OrderRequest = Static<typeof OrderRequest>;
type OrderType = OrderRequest['type'];

export const OrderView = Type.Object({
  id: Id,
  type: Type.String(),
  status: OrderStatus,
  request: Type.Unknown(),
  result: Type.Record(Type.String(), Type.Unknown()),
  reason: Type.Union([Type.String(), Type.Null()]),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});
export type OrderView = Static<typeof OrderView>;

const FIELDS_BY_TYPE: Record<OrderType, readonly (keyof OrderRequest)[]> = {
  'pool.create': ['pool'],
  'pool.scale': ['poolId', 'nodes'],
  'pool.delete': ['poolId'],
  'node.start': ['nodeId'],
  'node.stop': ['nodeId'],
  'node.restart': ['nodeId'],
};

export function orderIssues(order: OrderRequest): Issue[] {
  const wanted = FIELDS_BY_TYPE[order.type];
  const issues: Issue[] = [];
  for (const field of ['pool', 'poolId', 'nodes', 'nodeId'] as const) {
    const present = order[field] !== undefined;
    if (wanted.includes(field) && !present) issues.push({ path: field, message: `required for a ${order.type} order` });
    if (!wanted.includes(field) && present) issues.push({ path: field, message: `not allowed in a ${order.type} order` });
  }
  if (order.pool) issues.push(...poolSpecIssues(order.pool).map((i) => ({ ...i, path: `pool.${i.path}` })));
  if (order.nodes && order.nodes.min > order.nodes.max) issues.push({ path: 'nodes.min', message: 'must not exceed nodes.max' });
  return issues;
}

type Command = { [S in CommandSubject]: { subject: S; payload: Payload<S> } }[CommandSubject];

/** The command that carries out an order, and what the order knows of its result up front. */
export function commandFor(orderId: string, tenantId: string, order: OrderRequest): { command: Command; result: Record<string, unknown> } {
  const ids = { orderId, tenantId };
  switch (order.type) {
    case 'pool.create': {
      const poolId = randomUUID();
      const spec = { ...order.pool!, ...(order.pool!.country ? { country: order.pool!.country.toUpperCase() } : {}) };
      return { command: { subject: 'pool.cmd.create', payload: { ...ids, poolId, spec } }, result: { poolId } };
    }
    case 'pool.scale':
      return { command: { subject: 'pool.cmd.scale', payload: { ...ids, poolId: order.poolId!, nodes: order.nodes! } }, result: { poolId: order.poolId } };
    case 'pool.delete':
      return { command: { subject: 'pool.cmd.delete', payload: { ...ids, poolId: order.poolId! } }, result: { poolId: order.poolId } };
    case 'node.start':
    case 'node.stop':
    case 'node.restart': {
      const subject = `node.cmd.${order.type.slice('node.'.length)}` as 'node.cmd.start' | 'node.cmd.stop' | 'node.cmd.restart';
      return { command: { subject, payload: { ...ids, nodeId: order.nodeId! } }, result: { nodeId: order.nodeId } };
    }
  }
}

export function toView(o: Order): OrderView {
  return {
    id: o.id,
    type: o.type,
    status: o.status,
    request: o.request,
    result: o.result,
    reason: o.reason,
    createdAt: o.created_at.toISOString(),
    updatedAt: o.updated_at.toISOString(),
  };
}

/**
 * Stores the order and its command in one transaction: once this commits the command will
 * be published by the outbox relay, whatever happens to this process. With an idempotency
 * key, a retry of the same request returns the order placed first (`replayed`), and the same
 * key with another request is refused.
 */
export async function placeOrder(
  db: Kysely<Database>,
  tenantId: string,
  request: OrderRequest,
  idempotencyKey?: string,
): Promise<{ order: Order; replayed: boolean } | 'key_reused'> {
  const id = randomUUID();
  const { command, result } = commandFor(id, tenantId, request);
  return db.transaction().execute(async (tx: Transaction<Database>) => {
    const order = await tx
      .insertInto('orders')
      .values({
        tenant_id: tenantId,
        id,
        type: request.type,
        status: 'accepted',
        request: JSON.stringify(request),
        result: JSON.stringify(result),
        reason: null,
        idempotency_key: idempotencyKey ?? null,
      })
      .onConflict((oc) => oc.columns(['tenant_id', 'idempotency_key']).where('idempotency_key', 'is not', null).doNothing())
      .returningAll()
      .executeTakeFirst();
    if (!order) {
      // jsonb equality ignores key order and whitespace: the same request, however sent.
      const earlier = await tx
        .selectFrom('orders')
        .selectAll()
        .select(sql<boolean>`request = ${JSON.stringify(request)}::jsonb`.as('same_request'))
        .where('tenant_id', '=', tenantId)
        .where('idempotency_key', '=', idempotencyKey!)
        .executeTakeFirstOrThrow();
      const { same_request, ...existing } = earlier;
      return same_request ? { order: existing, replayed: true } : 'key_reused';
    }
    await tx
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
    return { order, replayed: false };
  });
}

export async function getOrder(db: Kysely<Database>, tenantId: string, id: string): Promise<Order | undefined> {
  return db.selectFrom('orders').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst();
}

export async function listOrders(db: Kysely<Database>, tenantId: string, opts: { limit: number; before?: Date }): Promise<Order[]> {
  let q = db.selectFrom('orders').selectAll().where('tenant_id', '=', tenantId);
  if (opts.before) q = q.where('created_at', '<', opts.before);
  return q.orderBy('created_at', 'desc').orderBy('id').limit(opts.limit).execute();
}

/** Applies an order event; terminal states never move back, so redeliveries are harmless. */
export async function recordOrderEvent(
  db: Kysely<Database>,
  tenantId: string,
  orderId: string,
  change: { status: 'in_progress' } | { status: 'fulfilled'; result: Record<string, unknown> } | { status: 'failed'; reason: string },
): Promise<void> {
  const allowedFrom = change.status === 'in_progress' ? ['accepted'] : ['accepted', 'in_progress'];
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
