import { randomUUID } from 'node:crypto';
import Type, { type Static } from 'typebox';
import {
  CountryCode,
  Id,
  isKnownCountry,
  OrderStatus,
  PoolSpec,
  poolSpecIssues,
  Timestamp,
  type SleepPolicy,
  type CommandSubject,
  type Issue,
  type Payload,
} from '@switchyard/contracts';
import { currentTraceparent } from '@switchyard/bus';
import { sql, type Kysely, type Transaction } from '@switchyard/db';
import { HOSTNAME } from './server-catalog.js';
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
      Type.Literal('node.add'),
    ]),
    pool: Type.Optional(PoolSpec),
    poolId: Type.Optional(Id),
    nodes: Type.Optional(NodeCount),
    nodeId: Type.Optional(Id),
    country: Type.Optional(CountryCode),
    server: Type.Optional(Type.String({ pattern: HOSTNAME.source, maxLength: 253, description: 'the VPN server hostname the node should use' })),
  },
  { additionalProperties: false },
);
export type OrderRequest = Static<typeof OrderRequest>;
type OrderType = OrderRequest['type'];

/**
 * Orders only the gateway's own endpoints place (`PUT /v1/pools/:id/sleep`, `POST
 * /v1/nodes/:id/sleep|wake`): those check first that the pool or node is the caller's, which
 * POST /v1/orders cannot do for a pool whose only reader would be the sleep controller.
 */
export type OwnOrderRequest =
  | { type: 'pool.sleep_policy'; poolId: string; policy: SleepPolicy }
  | { type: 'node.sleep'; nodeId: string }
  | { type: 'node.wake'; nodeId: string };
export type AnyOrderRequest = OrderRequest | OwnOrderRequest;

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

type Field = Exclude<keyof OrderRequest, 'type'>;
const FIELDS: readonly Field[] = ['pool', 'poolId', 'nodes', 'nodeId', 'country', 'server'];
const FIELDS_BY_TYPE: Record<OrderType, { required: readonly Field[]; optional?: readonly Field[] }> = {
  'pool.create': { required: ['pool'] },
  'pool.scale': { required: ['poolId', 'nodes'] },
  'pool.delete': { required: ['poolId'] },
  'node.start': { required: ['nodeId'] },
  'node.stop': { required: ['nodeId'] },
  'node.restart': { required: ['nodeId'] },
  // The node id is chosen here and returned in the order's result.
  'node.add': { required: ['country'], optional: ['server'] },
};

export function orderIssues(order: OrderRequest): Issue[] {
  const { required, optional = [] } = FIELDS_BY_TYPE[order.type];
  const issues: Issue[] = [];
  for (const field of FIELDS) {
    const present = order[field] !== undefined;
    if (required.includes(field) && !present) issues.push({ path: field, message: `required for a ${order.type} order` });
    if (!required.includes(field) && !optional.includes(field) && present) issues.push({ path: field, message: `not allowed in a ${order.type} order` });
  }
  if (order.country !== undefined && !isKnownCountry(order.country)) issues.push({ path: 'country', message: `unknown country "${order.country}" (expected an ISO 3166-1 alpha-2 code)` });
  if (order.pool) issues.push(...poolSpecIssues(order.pool).map((i) => ({ ...i, path: `pool.${i.path}` })));
  if (order.nodes && order.nodes.min > order.nodes.max) issues.push({ path: 'nodes.min', message: 'must not exceed nodes.max' });
  return issues;
}

type Command = { [S in CommandSubject]: { subject: S; payload: Payload<S> } }[CommandSubject];

/** The command that carries out an order, and what the order knows of its result up front. */
export function commandFor(orderId: string, tenantId: string, order: AnyOrderRequest): { command: Command; result: Record<string, unknown> } {
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
    case 'node.add': {
      const nodeId = randomUUID();
      const payload = { ...ids, nodeId, country: order.country!.toUpperCase(), ...(order.server ? { server: order.server } : {}) };
      return { command: { subject: 'node.cmd.add', payload }, result: { nodeId } };
    }
    case 'pool.sleep_policy':
      return { command: { subject: 'sleep.cmd.policy', payload: { ...ids, poolId: order.poolId, policy: order.policy } }, result: { poolId: order.poolId } };
    // "manual": the sleep controller's own sleeps say "idle: ...", the activator's wakes "connection".
    case 'node.sleep':
      return { command: { subject: 'sleep.cmd.node', payload: { ...ids, nodeId: order.nodeId, reason: 'manual' } }, result: { nodeId: order.nodeId } };
    case 'node.wake':
      return { command: { subject: 'node.cmd.wake', payload: { ...ids, nodeId: order.nodeId, reason: 'manual' } }, result: { nodeId: order.nodeId } };
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
  request: AnyOrderRequest,
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

/** An order the gateway places for a call of its own (no client key, so never a replay). */
export async function placeOwnOrder(db: Kysely<Database>, tenantId: string, request: AnyOrderRequest): Promise<Order> {
  return ((await placeOrder(db, tenantId, request)) as { order: Order }).order;
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
