import Type, { type Static } from 'typebox';
import { CountryCode, Id, isKnownCountry, OrderStatus, PoolSpec, poolSpecIssues, Timestamp, type Issue, type SleepPolicy, type TunnelSpec } from '@switchyard/contracts';
import { redactRequest } from '../secrets.js';
import { HOSTNAME } from '../server-catalog.js';
import type { Order } from '../tables.js';

const NodeCount = Type.Object({ min: Type.Integer({ minimum: 0, maximum: 100 }), max: Type.Integer({ minimum: 1, maximum: 100 }) }, { additionalProperties: false });

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
    keepVolumes: Type.Optional(Type.Boolean({ description: "pool.delete: keep the nodes' named volumes (removed with the pool by default)" })),
  },
  { additionalProperties: false },
);
export type OrderRequest = Static<typeof OrderRequest>;
type OrderType = OrderRequest['type'];

/**
 * Orders only the gateway's own endpoints place (`PUT /v1/pools/:id/sleep`, `POST
 * /v1/nodes/:id/sleep|wake`, `/v1/tunnels`): those check first that the pool, node or tunnel is
 * the caller's, which POST /v1/orders cannot do for a thing whose only reader is another service.
 */
export type OwnOrderRequest =
  | { type: 'pool.sleep_policy'; poolId: string; policy: SleepPolicy }
  | { type: 'node.sleep'; nodeId: string }
  | { type: 'node.wake'; nodeId: string }
  | { type: 'tunnel.open'; spec: TunnelSpec }
  | { type: 'tunnel.close'; tunnelId: string }
  | { type: 'tunnel.rotate'; tunnelId: string };
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
const FIELDS: readonly Field[] = ['pool', 'poolId', 'nodes', 'nodeId', 'country', 'server', 'keepVolumes'];
const FIELDS_BY_TYPE: Record<OrderType, { required: readonly Field[]; optional?: readonly Field[] }> = {
  'pool.create': { required: ['pool'] },
  'pool.scale': { required: ['poolId', 'nodes'] },
  'pool.delete': { required: ['poolId'], optional: ['keepVolumes'] },
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
  if (order.country !== undefined && !isKnownCountry(order.country))
    issues.push({ path: 'country', message: `unknown country "${order.country}" (expected an ISO 3166-1 alpha-2 code)` });
  if (order.pool) issues.push(...poolSpecIssues(order.pool).map((i) => ({ ...i, path: `pool.${i.path}` })));
  if (order.nodes && order.nodes.min > order.nodes.max) issues.push({ path: 'nodes.min', message: 'must not exceed nodes.max' });
  return issues;
}

export function toView(o: Order): OrderView {
  return {
    id: o.id,
    type: o.type,
    status: o.status,
    request: redactRequest(o.request),
    result: o.result,
    reason: o.reason,
    createdAt: o.created_at.toISOString(),
    updatedAt: o.updated_at.toISOString(),
  };
}
