import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { Id, NodeStatus, PublishedPort, Timestamp, type NodeView } from '@switchyard/contracts';
import type { Kysely } from '@switchyard/db';
import type { Fleet } from '../fleet.js';
import { figuresOf } from '../fleet.js';
import { callerOf } from '../http/auth.js';
import { notFound, RequestError } from '../http/errors.js';
import { placeOwnOrder } from '../orders/repository.js';
import { OrderView, toView } from '../orders/schemas.js';
import { redactSpec } from '../secrets.js';
import { listSpeedTests, recordSpeedTest } from '../speed-tests.js';
import type { Database } from '../tables.js';
import { requires } from '../scopes.js';
import { ErrorBody, Health, NodeSummary, PoolDetail, SpeedTestView, toHealth, toNodeSummary, toTraffic, Traffic, Unavailable } from './schemas.js';

export interface FleetRouteDeps {
  db: Kysely<Database>;
  fleet: Fleet;
  onOrderPlaced: () => void;
}

const NodeParams = Type.Object({ id: Id });

/** Pools, nodes and speed tests of the caller's tenant (mounted under /v1, behind its key check). */
export function fleetRoutes(deps: FleetRouteDeps): FastifyPluginAsync {
  const { db, fleet } = deps;

  async function nodeOr404(tenantId: string, nodeId: string): Promise<NodeView> {
    const node = await fleet.node(tenantId, nodeId);
    if (!node) throw notFound(`no node ${nodeId}`);
    return node;
  }

  return async (plugin) => {
    const v1 = plugin.withTypeProvider<TypeBoxTypeProvider>();

    v1.get(
      '/nodes',
      {
        schema: {
          ...requires('read'),
          querystring: Type.Object({ poolId: Type.Optional(Id) }, { additionalProperties: false }),
          response: {
            200: Type.Object({
              nodes: Type.Array(
                Type.Object({
                  id: Id,
                  poolId: Id,
                  name: Type.String(),
                  status: NodeStatus,
                  ports: Type.Array(PublishedPort),
                  startedAt: Type.Union([Timestamp, Type.Null()]),
                }),
              ),
            }),
            503: ErrorBody,
          },
        },
      },
      async (request) => {
        const nodes = await fleet.nodes(callerOf(request).tenantId, request.query.poolId);
        return { nodes: nodes.map((n) => ({ id: n.nodeId, poolId: n.poolId, name: n.name, status: n.status, ports: n.ports, startedAt: n.startedAt })) };
      },
    );

    v1.get(
      '/pools',
      {
        schema: { ...requires('read'), response: { 200: Type.Object({ pools: Type.Array(PoolDetail) }), 503: ErrorBody } },
      },
      async (request) => {
        const { pools, nodes } = await fleet.snapshot(callerOf(request).tenantId);
        return { pools: pools.map((p) => ({ id: p.poolId, name: p.name, spec: redactSpec(p.spec), nodes: nodes.filter((n) => n.poolId === p.poolId).map(toNodeSummary) })) };
      },
    );

    v1.get(
      '/pools/:id',
      {
        schema: { ...requires('read'), params: NodeParams, response: { 200: PoolDetail, 404: ErrorBody, 503: ErrorBody } },
      },
      async (request) => {
        const { pools, nodes } = await fleet.snapshot(callerOf(request).tenantId);
        const pool = pools.find((p) => p.poolId === request.params.id);
        if (!pool) throw notFound(`no pool ${request.params.id}`);
        return { id: pool.poolId, name: pool.name, spec: redactSpec(pool.spec), nodes: nodes.filter((n) => n.poolId === pool.poolId).map(toNodeSummary) };
      },
    );

    v1.get(
      '/pools/:id/best-node',
      {
        schema: {
          ...requires('read'),
          description: 'the node the next connection to this pool would go to, by its strategy; null when no node is healthy',
          params: NodeParams,
          response: { 200: Type.Object({ node: Type.Union([NodeSummary, Type.Null()]), strategy: Type.Union([Type.String(), Type.Null()]) }), 404: ErrorBody, 503: ErrorBody },
        },
      },
      async (request) => {
        const { tenantId } = callerOf(request);
        const { pools, nodes } = await fleet.snapshot(tenantId);
        if (!pools.some((p) => p.poolId === request.params.id)) throw notFound(`no pool ${request.params.id}`);
        const best = await fleet.best({ tenantId, poolId: request.params.id });
        const node = best && nodes.find((n) => n.nodeId === best.nodeId);
        return { node: node ? toNodeSummary(node) : null, strategy: best?.strategy ?? null };
      },
    );

    v1.get(
      '/nodes/:id',
      {
        schema: {
          ...requires('read'),
          params: NodeParams,
          response: { 200: Type.Object({ ...NodeSummary.properties, health: Health, traffic: Traffic, unavailable: Unavailable }), 404: ErrorBody, 503: ErrorBody },
        },
      },
      async (request) => {
        const { tenantId } = callerOf(request);
        const node = await nodeOr404(tenantId, request.params.id);
        const figures = await figuresOf(fleet, tenantId, [node.nodeId]);
        return {
          ...toNodeSummary(node),
          health: toHealth(figures.health.get(node.nodeId), figures.unavailable.includes('health-monitor')),
          traffic: toTraffic(figures.traffic.get(node.nodeId)),
          unavailable: figures.unavailable,
        };
      },
    );

    v1.get(
      '/nodes/:id/logs',
      {
        schema: {
          ...requires('read'),
          params: NodeParams,
          querystring: Type.Object({ lines: Type.Integer({ minimum: 1, maximum: 10_000, default: 100 }) }, { additionalProperties: false }),
          response: { 200: Type.Object({ logs: Type.Array(Type.String()), lines: Type.Integer() }), 404: ErrorBody, 503: ErrorBody },
        },
      },
      async (request) => {
        const reply = await fleet.logs(callerOf(request).tenantId, request.params.id, request.query.lines);
        if (reply.logs === null) throw notFound(`no node ${request.params.id}`);
        return { logs: reply.logs, lines: reply.lines };
      },
    );

    v1.post(
      '/nodes/:id/restart',
      {
        config: { idempotency: {} },
        schema: { ...requires('pools:write'), description: 'places a node.restart order', params: NodeParams, response: { 202: OrderView, 404: ErrorBody, 503: ErrorBody } },
      },
      async (request, reply) => {
        const { tenantId } = callerOf(request);
        await nodeOr404(tenantId, request.params.id);
        const order = await placeOwnOrder(db, tenantId, { type: 'node.restart', nodeId: request.params.id });
        deps.onOrderPlaced();
        return reply.code(202).header('location', `/v1/orders/${order.id}`).send(toView(order));
      },
    );

    v1.post(
      '/nodes/:id/speedtest',
      {
        schema: {
          ...requires('pools:write'),
          description: 'measures download, upload and latency through the node now (may take a while)',
          params: NodeParams,
          response: { 200: SpeedTestView, 404: ErrorBody, 422: ErrorBody, 503: ErrorBody },
        },
      },
      async (request) => {
        const { tenantId } = callerOf(request);
        await nodeOr404(tenantId, request.params.id);
        const { result, error } = await fleet.speedTest(tenantId, request.params.id);
        if (!result) throw new RequestError(422, 'speed_test_failed', `the speed test did not run: ${error ?? 'no reason given'}`);
        await recordSpeedTest(db, result);
        return { nodeId: result.nodeId, downloadMbps: result.downloadMbps, uploadMbps: result.uploadMbps, latencyMs: result.latencyMs, testedAt: result.at };
      },
    );

    v1.get(
      '/speedtests',
      {
        schema: {
          ...requires('read'),
          querystring: Type.Object({ nodeId: Type.Optional(Id), limit: Type.Integer({ minimum: 1, maximum: 500, default: 100 }) }, { additionalProperties: false }),
          response: { 200: Type.Object({ results: Type.Array(SpeedTestView) }) },
        },
      },
      async (request) => {
        const rows = await listSpeedTests(db, callerOf(request).tenantId, { nodeId: request.query.nodeId, limit: request.query.limit });
        return {
          results: rows.map((r) => ({ nodeId: r.node_id, downloadMbps: r.download_mbps, uploadMbps: r.upload_mbps, latencyMs: r.latency_ms, testedAt: r.tested_at.toISOString() })),
        };
      },
    );
  };
}
