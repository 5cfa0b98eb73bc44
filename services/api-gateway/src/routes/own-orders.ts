import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { Id } from '@switchyard/contracts';
import type { Kysely } from '@switchyard/db';
import { callerOf } from '../http/auth.js';
import { placeOwnOrder } from '../orders/repository.js';
import { OrderView, toView, type OwnOrderRequest } from '../orders/schemas.js';
import { requires } from '../scopes.js';
import type { Database, Order } from '../tables.js';
import { ErrorBody } from './schemas.js';

const Params = Type.Object({ id: Id });

export type PlaceOwnOrder = (tenantId: string, order: OwnOrderRequest) => Promise<Order>;

/** Places one of the gateway's own orders and wakes the outbox relay for its command. */
export function ownOrderPlacer(db: Kysely<Database>, onOrderPlaced: () => void): PlaceOwnOrder {
  return async (tenantId, order) => {
    const placed = await placeOwnOrder(db, tenantId, order);
    onOrderPlaced();
    return placed;
  };
}

/** A route that places one of the gateway's own orders for a thing of the caller's, named by id. */
export interface OwnOrderRoute {
  method: 'POST' | 'DELETE';
  url: string;
  description: string;
  /** Throws the 404 unless the id names a thing of the tenant's. */
  check(tenantId: string, id: string): Promise<unknown>;
  order(id: string): OwnOrderRequest;
}

/** 202 with the order and its Location; takes an Idempotency-Key; `pools:write`. */
export function ownOrderRoute(app: FastifyInstance, place: PlaceOwnOrder, route: OwnOrderRoute): void {
  app.route({
    method: route.method,
    url: route.url,
    config: { idempotency: {} },
    schema: {
      ...requires('pools:write'),
      description: route.description,
      params: Params,
      response: { 202: OrderView, 400: ErrorBody, 404: ErrorBody, 503: ErrorBody },
    },
    handler: async (request, reply) => {
      const { tenantId } = callerOf(request);
      const { id } = request.params as { id: string };
      await route.check(tenantId, id);
      const order = await place(tenantId, route.order(id));
      return reply.code(202).header('location', `/v1/orders/${order.id}`).send(toView(order));
    },
  });
}
