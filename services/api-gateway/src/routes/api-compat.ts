import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { BalancingStrategy, type NodeView } from '@switchyard/contracts';
import type { Kysely } from '@switchyard/db';
import { figuresOf, type Fleet } from '../fleet.js';
import { assertScopeDeclared, callerOf, type Auth, type BasicAccount } from '../http/auth.js';
import { installErrorHandler, notFound, RequestError } from '../http/errors.js';
import type { PoolGuard } from '../orders/pool-guard.js';
import { placeOwnOrder } from '../orders/repository.js';
import { HOSTNAME, type ServerCatalog } from '../server-catalog.js';
import { listSpeedTests, recordSpeedTest } from '../speed-tests.js';
import type { Database } from '../tables.js';
import { requires } from '../scopes.js';
import { compatCountry, type CompatCountry } from '../compat/countries.js';
import { CompatNode, CompatSpeedTest, CompatStats, compatStats, isListedExitNode, toCompatNode, toCompatSpeedTest } from '../compat/shapes.js';

export interface CompatDeps {
  db: Kysely<Database>;
  fleet: Fleet;
  servers: ServerCatalog;
  /** Absent: HTTP Basic is refused and only API keys open the surface. */
  basic: BasicAccount | undefined;
  onOrderPlaced: () => void;
  guard: PoolGuard;
  health: () => Promise<{ database: boolean; nats: boolean }>;
  auth: Auth;
}

const STRATEGIES = BalancingStrategy.anyOf.map((s) => s.const);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const Detail = Type.Object({
  detail: Type.String(),
  error: Type.String(),
  message: Type.String(),
  issues: Type.Optional(Type.Array(Type.Object({ field: Type.String(), message: Type.String() }))),
});
const Errors = { 400: Detail, 401: Detail, 404: Detail, 503: Detail };
const NodeParams = Type.Object({ node_id: Type.String({ description: 'a node id; one that does not exist is a 404' }) });
const CountryParams = Type.Object({ country_code: Type.String({ description: 'ISO 3166-1 alpha-2 code, either case; `uk` is taken for GB and answered as `uk`' }) });
const Accepted = (status: string) => Type.Object({ status: Type.Literal(status), node_id: Type.String({ format: 'uuid' }) });

/** A path's country, lower-cased as the source API writes it; an unknown code is a 400. */
function countryOf(raw: string, field: string): CompatCountry {
  const country = compatCountry(raw);
  if (!country)
    throw new RequestError(400, 'bad_request', `${field}: unknown country "${raw}" (expected an ISO 3166-1 alpha-2 code)`, [{ path: field, message: `unknown country "${raw}"` }]);
  return country;
}

/**
 * The VPN Exit Controller API v2, path for path, so its existing clients (dashboards, the
 * Raycast extension, scripts) work unchanged: HTTP Basic or a native key, snake_case shapes,
 * FastAPI's `detail` on errors, and lower-case country codes.
 */
export function compatRoutes(deps: CompatDeps): FastifyPluginAsync {
  const { db, fleet } = deps;

  async function nodeOr404(tenantId: string, nodeId: string): Promise<NodeView> {
    const node = UUID.test(nodeId) ? await fleet.node(tenantId, nodeId) : undefined;
    if (!node || !isListedExitNode(node)) throw notFound(`node ${nodeId} not found`);
    return node;
  }

  async function compatNodes(tenantId: string, nodes: NodeView[]) {
    const figures = await figuresOf(
      fleet,
      tenantId,
      nodes.map((n) => n.nodeId),
    );
    return nodes.map((n) => toCompatNode(n, figures.health.get(n.nodeId), figures.traffic.get(n.nodeId)));
  }

  return async (compat) => {
    installErrorHandler(compat, { detail: true });
    // Its clients send "Content-Type: application/json" on POSTs without a body.
    const json = compat.getDefaultJsonParser('error', 'error');
    compat.removeContentTypeParser('application/json');
    compat.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
      const text = body.toString();
      if (text === '') return done(null, undefined);
      json(request, text, done);
    });

    compat.get(
      '/health',
      {
        schema: {
          security: [],
          response: {
            200: Type.Object({ status: Type.String(), database: Type.Boolean(), nats: Type.Boolean(), timestamp: Type.String({ format: 'date-time' }) }),
            503: Type.Object({ status: Type.String(), database: Type.Boolean(), nats: Type.Boolean(), timestamp: Type.String({ format: 'date-time' }) }),
          },
        },
      },
      async (_request, reply) => {
        const { database, nats } = await deps.health();
        const ok = database && nats;
        return reply.code(ok ? 200 : 503).send({ status: ok ? 'healthy' : 'unhealthy', database, nats, timestamp: new Date().toISOString() });
      },
    );

    compat.register(async (plugin) => {
      const api = plugin.withTypeProvider<TypeBoxTypeProvider>();
      api.addHook('onRoute', assertScopeDeclared);
      api.addHook('onRequest', deps.auth.basicOrKey(deps.basic));

      api.get('/nodes', { schema: { ...requires('read', { basic: true }), response: { 200: Type.Array(CompatNode), ...Errors } } }, async (request) => {
        const { tenantId } = callerOf(request);
        return compatNodes(tenantId, (await fleet.nodes(tenantId)).filter(isListedExitNode));
      });

      api.post(
        '/nodes/:country_code/start',
        {
          schema: {
            ...requires('pools:write', { basic: true }),
            description: 'adds a node to the exit pool of the country (made with defaults if there is none); the node starts asynchronously',
            params: CountryParams,
            querystring: Type.Object({ server: Type.Optional(Type.String({ pattern: HOSTNAME.source, maxLength: 253 })) }, { additionalProperties: false }),
            body: Type.Optional(
              Type.Object({ server: Type.Optional(Type.Union([Type.String({ pattern: HOSTNAME.source, maxLength: 253 }), Type.Null()])) }, { additionalProperties: false }),
            ),
            response: {
              200: Type.Object({
                status: Type.Literal('starting'),
                node_id: Type.String({ format: 'uuid' }),
                country: Type.String(),
                server: Type.Union([Type.String(), Type.Null()]),
              }),
              ...Errors,
              403: Detail,
              429: Detail,
            },
          },
        },
        async (request, reply) => {
          const { tenantId } = callerOf(request);
          const country = countryOf(request.params.country_code, 'params.country_code');
          const fromBody = request.body?.server ?? undefined;
          const fromQuery = request.query.server;
          if (fromBody && fromQuery && fromBody !== fromQuery) {
            throw new RequestError(400, 'bad_request', 'server: given twice with different values (query and body)', [{ path: 'server', message: 'query and body disagree' }]);
          }
          const server = fromBody ?? fromQuery;
          const add = { type: 'node.add' as const, country: country.iso, ...(server ? { server } : {}) };
          const order = await deps.guard.place(callerOf(request), add, undefined, reply, () => placeOwnOrder(db, tenantId, add));
          deps.onOrderPlaced();
          return { status: 'starting' as const, node_id: (order.result as { nodeId: string }).nodeId, country: country.given, server: server ?? null };
        },
      );

      api.delete(
        '/nodes/:node_id/stop',
        { schema: { ...requires('pools:write', { basic: true }), params: NodeParams, response: { 200: Accepted('stopping'), ...Errors } } },
        async (request) => {
          const { tenantId } = callerOf(request);
          const node = await nodeOr404(tenantId, request.params.node_id);
          await placeOwnOrder(db, tenantId, { type: 'node.stop', nodeId: node.nodeId });
          deps.onOrderPlaced();
          return { status: 'stopping' as const, node_id: node.nodeId };
        },
      );

      api.post(
        '/nodes/:node_id/restart',
        { schema: { ...requires('pools:write', { basic: true }), params: NodeParams, response: { 200: Accepted('restarting'), ...Errors } } },
        async (request) => {
          const { tenantId } = callerOf(request);
          const node = await nodeOr404(tenantId, request.params.node_id);
          await placeOwnOrder(db, tenantId, { type: 'node.restart', nodeId: node.nodeId });
          deps.onOrderPlaced();
          return { status: 'restarting' as const, node_id: node.nodeId };
        },
      );

      api.get('/nodes/:node_id', { schema: { ...requires('read', { basic: true }), params: NodeParams, response: { 200: CompatNode, ...Errors } } }, async (request) => {
        const { tenantId } = callerOf(request);
        const [node] = await compatNodes(tenantId, [await nodeOr404(tenantId, request.params.node_id)]);
        return node!;
      });

      api.get(
        '/nodes/:node_id/logs',
        {
          schema: {
            ...requires('read', { basic: true }),
            params: NodeParams,
            querystring: Type.Object({ lines: Type.Integer({ minimum: 1, maximum: 10_000, default: 100 }) }, { additionalProperties: false }),
            response: { 200: Type.Object({ logs: Type.String({ description: 'the last lines, newline-separated' }), lines: Type.Integer() }), ...Errors },
          },
        },
        async (request) => {
          const { tenantId } = callerOf(request);
          const node = await nodeOr404(tenantId, request.params.node_id);
          const reply = await fleet.logs(tenantId, node.nodeId, request.query.lines);
          if (reply.logs === null) throw notFound(`node ${request.params.node_id} not found`);
          return { logs: reply.logs.join('\n'), lines: reply.lines };
        },
      );

      api.get('/stats', { schema: { ...requires('read', { basic: true }), response: { 200: CompatStats, ...Errors } } }, async (request) => {
        const { tenantId } = callerOf(request);
        const nodes = (await fleet.nodes(tenantId)).filter(isListedExitNode);
        const traffic = await fleet.traffic(
          tenantId,
          nodes.map((n) => n.nodeId),
        );
        return compatStats(nodes, traffic.value);
      });

      api.get(
        '/countries',
        {
          schema: {
            ...requires('read', { basic: true }),
            description: "countries a node can be started in: those of the server catalog and of the caller's exit pools, lower-case, sorted",
            response: { 200: Type.Array(Type.String()), ...Errors },
          },
        },
        async (request) => {
          const { pools } = await fleet.snapshot(callerOf(request).tenantId);
          const countries = new Set(deps.servers.keys());
          for (const p of pools) if (p.spec.kind === 'exit' && p.spec.country) countries.add(p.spec.country.toLowerCase());
          return [...countries].sort();
        },
      );

      api.get(
        '/config/servers',
        {
          schema: { ...requires('read', { basic: true }), response: { 200: Type.Record(Type.String(), Type.Array(Type.String())), ...Errors } },
        },
        async () => Object.fromEntries([...deps.servers].map(([country, list]) => [country, [...list]])),
      );

      api.get(
        '/config/servers/:country_code',
        {
          schema: { ...requires('read', { basic: true }), params: CountryParams, response: { 200: Type.Array(Type.String()), ...Errors } },
        },
        async (request) => {
          const country = countryOf(request.params.country_code, 'params.country_code');
          const servers = deps.servers.get(country.iso);
          if (!servers) throw notFound(`no servers configured for country "${country.given}"`);
          return [...servers];
        },
      );

      api.get(
        '/load-balancer/best-node/:country_code',
        {
          schema: { ...requires('read', { basic: true }), params: CountryParams, response: { 200: Type.Union([CompatNode, Type.Null()]), ...Errors } },
        },
        async (request) => {
          const { tenantId } = callerOf(request);
          const country = countryOf(request.params.country_code, 'params.country_code');
          const best = await fleet.best({ tenantId, country: country.iso.toUpperCase() });
          if (!best) return null;
          const node = await fleet.node(tenantId, best.nodeId);
          if (!node) return null;
          const [shown] = await compatNodes(tenantId, [node]);
          return { ...shown!, country: country.given };
        },
      );

      const StrategyBody = Type.Object({ strategy: BalancingStrategy });
      api.get('/load-balancer/strategy', { schema: { ...requires('read', { basic: true }), response: { 200: StrategyBody, ...Errors } } }, async (request) => ({
        strategy: await fleet.strategy(callerOf(request).tenantId),
      }));

      api.post(
        '/load-balancer/strategy',
        {
          schema: {
            ...requires('pools:write', { basic: true }),
            body: Type.Object({ strategy: Type.String({ description: `one of ${STRATEGIES.join(', ')}` }) }, { additionalProperties: false }),
            response: { 200: StrategyBody, ...Errors },
          },
        },
        async (request) => {
          const { strategy } = request.body;
          if (!(STRATEGIES as string[]).includes(strategy)) {
            throw new RequestError(400, 'bad_request', `strategy: unknown strategy "${strategy}"; one of ${STRATEGIES.join(', ')}`, [
              { path: 'strategy', message: `one of ${STRATEGIES.join(', ')}` },
            ]);
          }
          return { strategy: await fleet.strategy(callerOf(request).tenantId, strategy as (typeof STRATEGIES)[number]) };
        },
      );

      api.post(
        '/speed-test/:node_id',
        {
          schema: { ...requires('pools:write', { basic: true }), params: NodeParams, response: { 200: CompatSpeedTest, 422: Detail, ...Errors } },
        },
        async (request) => {
          const { tenantId } = callerOf(request);
          const node = await nodeOr404(tenantId, request.params.node_id);
          const { result, error } = await fleet.speedTest(tenantId, node.nodeId);
          if (!result) throw new RequestError(422, 'speed_test_failed', `the speed test did not run: ${error ?? 'no reason given'}`);
          await recordSpeedTest(db, result);
          return { node_id: result.nodeId, download_mbps: result.downloadMbps, upload_mbps: result.uploadMbps, latency_ms: result.latencyMs, tested_at: result.at };
        },
      );

      api.get('/speed-test/results', { schema: { ...requires('read', { basic: true }), response: { 200: Type.Array(CompatSpeedTest), ...Errors } } }, async (request) =>
        (await listSpeedTests(db, callerOf(request).tenantId, { limit: 100 })).map(toCompatSpeedTest),
      );

      api.get(
        '/speed-test/results/:node_id',
        { schema: { ...requires('read', { basic: true }), params: NodeParams, response: { 200: Type.Array(CompatSpeedTest), ...Errors } } },
        async (request) => {
          const { tenantId } = callerOf(request);
          const nodeId = request.params.node_id;
          const rows = UUID.test(nodeId) ? await listSpeedTests(db, tenantId, { nodeId, limit: 100 }) : [];
          // A node with results is known even after it is gone; one with none must exist.
          if (!rows.length) await nodeOr404(tenantId, nodeId);
          return rows.map(toCompatSpeedTest);
        },
      );
    });
  };
}
