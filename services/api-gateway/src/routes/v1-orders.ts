import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { Id, Timestamp } from '@switchyard/contracts';
import type { Kysely } from '@switchyard/db';
import { callerOf } from '../http/auth.js';
import { badRequest, notFound, RequestError } from '../http/errors.js';
import { idempotencyKeyOf, REPLAYED_HEADER } from '../idempotency/plugin.js';
import type { PoolGuard } from '../orders/pool-guard.js';
import { getOrder, listOrders, placeOrder } from '../orders/repository.js';
import { OrderRequest, OrderView, orderIssues, toView } from '../orders/schemas.js';
import type { OrderSecrets } from '../secrets.js';
import type { Database } from '../tables.js';
import { requires } from '../scopes.js';
import { ErrorBody } from './schemas.js';

export interface OrderRouteDeps {
  db: Kysely<Database>;
  onOrderPlaced: () => void;
  guard: PoolGuard;
  /** Seals a pool's secretEnv before the order is stored (SECRETS_KEY). */
  secrets: OrderSecrets;
}

/** Orders placed by clients, and every order of the tenant (mounted under /v1, behind its key check). */
export function orderRoutes(deps: OrderRouteDeps): FastifyPluginAsync {
  const { db } = deps;

  return async (plugin) => {
    const v1 = plugin.withTypeProvider<TypeBoxTypeProvider>();

    v1.post(
      '/orders',
      {
        // A retry after the order was stored but its record was not (the answer failed) still
        // meets the key on the order row: placeOrder returns the same order.
        config: { idempotency: {} },
        schema: {
          ...requires('pools:write'),
          body: OrderRequest,
          response: { 202: OrderView, 400: ErrorBody, 403: ErrorBody, 422: ErrorBody, 429: ErrorBody, 503: ErrorBody },
        },
      },
      async (request, reply) => {
        const issues = orderIssues(request.body);
        if (issues.length) throw badRequest(issues);
        const key = idempotencyKeyOf(request);
        const caller = callerOf(request);
        deps.secrets.check(request.body);
        const placed = await deps.guard.place(caller, request.body, key, reply, () => placeOrder(db, caller.tenantId, request.body, key, deps.secrets));
        if (placed === 'key_reused') {
          throw new RequestError(422, 'idempotency_key_reused', `Idempotency-Key "${key}" was already used for a different request`, [
            { path: 'headers.idempotency-key', message: 'already used for a different request' },
          ]);
        }
        if (!placed.replayed) deps.onOrderPlaced();
        if (placed.replayed) reply.header(REPLAYED_HEADER, 'true');
        return reply.code(202).header('location', `/v1/orders/${placed.order.id}`).send(toView(placed.order));
      },
    );

    v1.get(
      '/orders',
      {
        schema: {
          ...requires('read'),
          querystring: Type.Object(
            {
              limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }),
              before: Type.Optional(Timestamp),
            },
            { additionalProperties: false },
          ),
          response: { 200: Type.Object({ orders: Type.Array(OrderView) }) },
        },
      },
      async (request) => {
        const { limit, before } = request.query;
        const orders = await listOrders(db, callerOf(request).tenantId, { limit, ...(before ? { before: new Date(before) } : {}) });
        return { orders: orders.map(toView) };
      },
    );

    v1.get(
      '/orders/:id',
      {
        schema: { ...requires('read'), params: Type.Object({ id: Id }), response: { 200: OrderView, 404: ErrorBody } },
      },
      async (request) => {
        // Another tenant's order is indistinguishable from a missing one.
        const order = await getOrder(db, callerOf(request).tenantId, request.params.id);
        if (!order) throw notFound(`no order ${request.params.id}`);
        return toView(order);
      },
    );
  };
}
