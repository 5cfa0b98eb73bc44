import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import type { Logger } from 'pino';
import type { Bus } from '@switchyard/bus';
import { Id, Name, NodeStatus, PublishedPort, Timestamp } from '@switchyard/contracts';
import { sql, type Kysely } from '@switchyard/db';
import { badRequest, installErrorHandler, notFound, RequestError, validatorCompiler } from './http/errors.js';
import { installTracing } from './http/tracing.js';
import { createTenant, findCaller, type Caller } from './keys.js';
import { getOrder, listOrders, OrderRequest, OrderView, orderIssues, placeOrder, toView } from './orders.js';
import type { Database } from './tables.js';

export interface AppDeps {
  db: Kysely<Database>;
  bus: Bus;
  log: Logger;
  /** Called after an order commits so its command goes out without waiting for a poll. */
  onOrderPlaced: () => void;
  natsConnected: () => boolean;
}

const ErrorBody = Type.Object({
  error: Type.String(),
  message: Type.String(),
  issues: Type.Optional(Type.Array(Type.Object({ field: Type.String(), message: Type.String() }))),
});

const callers = new WeakMap<FastifyRequest, Caller>();
function callerOf(request: FastifyRequest): Caller {
  const caller = callers.get(request);
  if (!caller) throw new RequestError(401, 'unauthorized', 'missing API key');
  return caller;
}

function apiKeyOf(request: FastifyRequest): string | undefined {
  const auth = request.headers.authorization;
  if (auth?.startsWith('Bearer ')) return auth.slice('Bearer '.length).trim();
  const header = request.headers['x-api-key'];
  return typeof header === 'string' ? header : undefined;
}

/** The HTTP API as a plugin-style factory that never listens: tests use `app.inject`. */
export function buildApp(deps: AppDeps): FastifyInstance {
  const { db, bus } = deps;
  const app: FastifyInstance = Fastify({ loggerInstance: deps.log as FastifyBaseLogger, bodyLimit: 256 * 1024, return503OnClosing: true });
  app.setValidatorCompiler(validatorCompiler);
  installErrorHandler(app);
  installTracing(app);
  // Registered before the routes so it sees each of them; the document is built from the
  // same schemas that validate requests.
  app.register(swagger, {
    openapi: {
      info: { title: 'Switchyard API', version: '0.1.0', description: 'Orders for exit nodes and sleepy services' },
      components: { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'an API key of one tenant' } } },
      security: [{ apiKey: [] }],
    },
  });
  app.register(async (plugin) => {
    plugin.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  });

  app.get('/healthz', async (_request, reply) => {
    const database = await sql`select 1`.execute(db).then(() => true, () => false);
    const nats = deps.natsConnected();
    const ok = database && nats;
    return reply.code(ok ? 200 : 503).send({ status: ok ? 'ok' : 'degraded', database, nats });
  });

  app.register(async (plugin) => {
    const v1 = plugin.withTypeProvider<TypeBoxTypeProvider>();
    v1.addHook('onRequest', async (request) => {
      const key = apiKeyOf(request);
      if (!key) throw new RequestError(401, 'unauthorized', 'missing API key: send "Authorization: Bearer <key>"');
      const caller = await findCaller(db, key);
      if (!caller) throw new RequestError(401, 'unauthorized', 'unknown or revoked API key');
      callers.set(request, caller);
    });

    v1.post('/tenants', {
      schema: {
        body: Type.Object({ name: Name }, { additionalProperties: false }),
        response: { 201: Type.Object({ id: Id, name: Type.String(), apiKey: Type.String() }), 403: ErrorBody, 409: ErrorBody },
      },
    }, async (request, reply) => {
      if (callerOf(request).role !== 'admin') throw new RequestError(403, 'forbidden', 'only an admin key can create tenants');
      const created = await createTenant(db, request.body.name);
      if (created === 'exists') throw new RequestError(409, 'conflict', `a tenant named "${request.body.name}" already exists`);
      return reply.code(201).send({ id: created.tenantId, name: request.body.name, apiKey: created.apiKey });
    });

    v1.post('/orders', {
      schema: {
        headers: Type.Object({
          'idempotency-key': Type.Optional(Type.String({ minLength: 1, maxLength: 200, pattern: '^[\\x21-\\x7e]+$', description: 'retries with the same key return the first order' })),
        }),
        body: OrderRequest,
        response: { 202: OrderView, 400: ErrorBody, 422: ErrorBody },
      },
    }, async (request, reply) => {
      const issues = orderIssues(request.body);
      if (issues.length) throw badRequest(issues);
      const key = request.headers['idempotency-key'];
      const placed = await placeOrder(db, callerOf(request).tenantId, request.body, key);
      if (placed === 'key_reused') {
        throw new RequestError(422, 'idempotency_key_reused', `Idempotency-Key "${key}" was already used for a different order request`, [
          { path: 'headers.idempotency-key', message: 'already used for a different request' },
        ]);
      }
      if (!placed.replayed) deps.onOrderPlaced();
      if (placed.replayed) reply.header('idempotent-replayed', 'true');
      return reply.code(202).header('location', `/v1/orders/${placed.order.id}`).send(toView(placed.order));
    });

    v1.get('/orders', {
      schema: {
        querystring: Type.Object({
          limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }),
          before: Type.Optional(Timestamp),
        }, { additionalProperties: false }),
        response: { 200: Type.Object({ orders: Type.Array(OrderView) }) },
      },
    }, async (request) => {
      const { limit, before } = request.query;
      const orders = await listOrders(db, callerOf(request).tenantId, { limit, ...(before ? { before: new Date(before) } : {}) });
      return { orders: orders.map(toView) };
    });

    v1.get('/orders/:id', {
      schema: { params: Type.Object({ id: Id }), response: { 200: OrderView, 404: ErrorBody } },
    }, async (request) => {
      // Another tenant's order is indistinguishable from a missing one.
      const order = await getOrder(db, callerOf(request).tenantId, request.params.id);
      if (!order) throw notFound(`no order ${request.params.id}`);
      return toView(order);
    });

    v1.get('/nodes', {
      schema: {
        querystring: Type.Object({ poolId: Type.Optional(Id) }, { additionalProperties: false }),
        response: {
          200: Type.Object({
            nodes: Type.Array(Type.Object({
              id: Id, poolId: Id, name: Type.String(), status: NodeStatus, ports: Type.Array(PublishedPort), startedAt: Type.Union([Timestamp, Type.Null()]),
            })),
          }),
          503: ErrorBody,
        },
      },
    }, async (request) => {
      const { tenantId } = callerOf(request);
      const reply = await bus.request('node.req.list', { tenantId, ...(request.query.poolId ? { poolId: request.query.poolId } : {}) }, { timeoutMs: 3000 });
      return { nodes: reply.nodes.map((n) => ({ id: n.nodeId, poolId: n.poolId, name: n.name, status: n.status, ports: n.ports, startedAt: n.startedAt })) };
    });
  }, { prefix: '/v1' });

  return app;
}
