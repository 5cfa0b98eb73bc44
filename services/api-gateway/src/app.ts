import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import type { Logger } from 'pino';
import { Id, Name, NodeStatus, PublishedPort, Timestamp } from '@switchyard/contracts';
import { sql, type Kysely } from '@switchyard/db';
import { compatRoutes } from './compat/routes.js';
import type { Fleet } from './fleet.js';
import { authenticateKey, callerOf, type BasicAccount } from './http/auth.js';
import { badRequest, installErrorHandler, notFound, RequestError, validatorCompiler } from './http/errors.js';
import { installTracing } from './http/tracing.js';
import { createTenant } from './keys.js';
import { getOrder, listOrders, OrderRequest, OrderView, orderIssues, placeOrder, toView } from './orders.js';
import { ErrorBody } from './routes/schemas.js';
import { activityRoutes } from './routes/v1-activity.js';
import { fleetRoutes } from './routes/v1-fleet.js';
import { sleepRoutes } from './routes/v1-sleep.js';
import type { ServerCatalog } from './server-catalog.js';
import type { Database } from './tables.js';

export interface AppDeps {
  db: Kysely<Database>;
  log: Logger;
  /** Called after an order commits so its command goes out without waiting for a poll. */
  onOrderPlaced: () => void;
  natsConnected: () => boolean;
  /** Questions to the services that own nodes, health and routing. */
  fleet: Fleet;
  /** The VPN server catalog of the /api surface. */
  servers: ServerCatalog;
  /** HTTP Basic account of the /api surface; absent, only API keys open it. */
  basic?: BasicAccount | undefined;
}

/** The HTTP API as a plugin-style factory that never listens: tests use `app.inject`. */
export function buildApp(deps: AppDeps): FastifyInstance {
  const { db } = deps;
  const app: FastifyInstance = Fastify({ loggerInstance: deps.log as FastifyBaseLogger, bodyLimit: 256 * 1024, return503OnClosing: true });
  app.setValidatorCompiler(validatorCompiler);
  installErrorHandler(app);
  installTracing(app);
  // Registered before the routes so it sees each of them; the document is built from the
  // same schemas that validate requests.
  app.register(swagger, {
    openapi: {
      info: { title: 'Switchyard API', version: '0.1.0', description: 'Orders for exit nodes and sleepy services' },
      components: {
        securitySchemes: {
          apiKey: { type: 'http', scheme: 'bearer', description: 'an API key of one tenant' },
          basic: { type: 'http', scheme: 'basic', description: '/api only: COMPAT_API_USERNAME and COMPAT_API_PASSWORD' },
        },
      },
      security: [{ apiKey: [] }, { basic: [] }],
    },
  });
  app.register(async (plugin) => {
    plugin.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  });
  // The UI fetches its own copy of the document (/docs/json), built from the same routes.
  app.register(swaggerUi, { routePrefix: '/docs' });

  const reachability = async () => ({
    database: await sql`select 1`.execute(db).then(() => true, () => false),
    nats: deps.natsConnected(),
  });
  app.get('/healthz', async (_request, reply) => {
    const { database, nats } = await reachability();
    const ok = database && nats;
    return reply.code(ok ? 200 : 503).send({ status: ok ? 'ok' : 'degraded', database, nats });
  });

  app.register(compatRoutes({ db, fleet: deps.fleet, servers: deps.servers, basic: deps.basic, onOrderPlaced: deps.onOrderPlaced, health: reachability }), { prefix: '/api' });

  app.register(async (plugin) => {
    const v1 = plugin.withTypeProvider<TypeBoxTypeProvider>();
    v1.addHook('onRequest', async (request) => authenticateKey(db, request));
    v1.register(fleetRoutes({ db, fleet: deps.fleet, onOrderPlaced: deps.onOrderPlaced }));
    v1.register(sleepRoutes({ db, fleet: deps.fleet, onOrderPlaced: deps.onOrderPlaced }));
    v1.register(activityRoutes({ db }));

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
      const nodes = await deps.fleet.nodes(callerOf(request).tenantId, request.query.poolId);
      return { nodes: nodes.map((n) => ({ id: n.nodeId, poolId: n.poolId, name: n.name, status: n.status, ports: n.ports, startedAt: n.startedAt })) };
    });
  }, { prefix: '/v1' });

  return app;
}
