import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { Id, TunnelSpec, TunnelView } from '@switchyard/contracts';
import type { Kysely } from '@switchyard/db';
import type { Fleet, TunnelView as Tunnel } from '../fleet.js';
import { callerOf } from '../http/auth.js';
import { badRequest, notFound, RequestError } from '../http/errors.js';
import { OrderView, toView } from '../orders/schemas.js';
import type { Database } from '../tables.js';
import { requires } from '../scopes.js';
import { tunnelSpecIssues } from '../tunnels.js';
import { ownOrderPlacer, ownOrderRoute } from './own-orders.js';
import { ErrorBody } from './schemas.js';

export interface TunnelRouteDeps {
  db: Kysely<Database>;
  fleet: Fleet;
  onOrderPlaced: () => void;
}

const Params = Type.Object({ id: Id });

const OpenOrder = Type.Object({ ...OrderView.properties, tunnelId: Id }, { description: "the tunnel.open order, and the id the tunnel will have (also in the order's result)" });

/**
 * Tunnels to a node's or an app pool's port (docs/tunnels.md), mounted under /v1 behind its key check.
 * tunnel-manager holds the tunnels: the gateway checks a request against what it and
 * exit-node-manager say, and places an order whose command tunnel-manager carries out.
 */
export function tunnelRoutes(deps: TunnelRouteDeps): FastifyPluginAsync {
  const { db, fleet } = deps;

  async function tunnelOr404(tenantId: string, tunnelId: string): Promise<Tunnel> {
    const tunnel = await fleet.tunnel(tenantId, tunnelId);
    if (!tunnel) throw notFound(`no tunnel ${tunnelId}`);
    return tunnel;
  }

  /** The ports the tunnel's node (or pool: its spec's and its nodes') publishes; a 404 naming the field for another tenant's or a missing one. */
  async function publishedBy(tenantId: string, spec: TunnelSpec): Promise<{ of: string; ports: number[] }> {
    if (spec.poolId !== undefined) {
      const { pools, nodes } = await fleet.snapshot(tenantId);
      const pool = pools.find((p) => p.poolId === spec.poolId && p.tenantId === tenantId);
      if (!pool) throw new RequestError(404, 'not_found', `poolId: no pool ${spec.poolId}`, [{ path: 'poolId', message: `no pool ${spec.poolId}` }]);
      if (pool.spec.kind !== 'app') throw badRequest([{ path: 'poolId', message: `pool ${spec.poolId} is an exit pool; a tunnel takes an app pool's port` }]);
      const live = nodes.filter((n) => n.poolId === pool.poolId && n.status !== 'removed');
      const ports = [...(pool.spec.ports ?? []).map((p) => p.containerPort), ...live.flatMap((n) => n.ports.map((p) => p.containerPort))];
      return { of: `pool ${spec.poolId}`, ports };
    }
    const node = await fleet.node(tenantId, spec.nodeId!);
    if (!node) throw new RequestError(404, 'not_found', `nodeId: no node ${spec.nodeId}`, [{ path: 'nodeId', message: `no node ${spec.nodeId}` }]);
    return { of: `node ${spec.nodeId}`, ports: node.ports.map((p) => p.containerPort) };
  }

  const place = ownOrderPlacer(db, deps.onOrderPlaced);

  return async (plugin) => {
    const v1 = plugin.withTypeProvider<TypeBoxTypeProvider>();

    v1.post(
      '/tunnels',
      {
        config: { idempotency: {} },
        schema: {
          ...requires('pools:write'),
          description:
            "places a tunnel.open order: tunnel-manager exposes the node's (or app pool's) port at an endpoint on its edge over the paths, in order of preference (tunnel.cmd.open). The node or pool must be the caller's and publish the port; the name must be free among the tenant's tunnels",
          body: TunnelSpec,
          response: { 202: OpenOrder, 400: ErrorBody, 404: ErrorBody, 409: ErrorBody, 503: ErrorBody },
        },
      },
      async (request, reply) => {
        const spec = request.body;
        // What the spec alone gets wrong is refused before any service is asked.
        const own = tunnelSpecIssues(spec);
        if (own.length) throw badRequest(own);
        const { tenantId } = callerOf(request);
        const issues = tunnelSpecIssues(spec, await publishedBy(tenantId, spec));
        if (issues.length) throw badRequest(issues);
        // Two requests at once can both pass this: tunnel-manager, which holds the names, has the last word.
        const holder = (await fleet.tunnels(tenantId)).find((t) => t.spec.name === spec.name);
        if (holder) throw new RequestError(409, 'conflict', `name: the tunnel ${holder.tunnelId} is named "${spec.name}"`, [{ path: 'name', message: 'taken' }]);
        const order = await place(tenantId, { type: 'tunnel.open', spec });
        return reply
          .code(202)
          .header('location', `/v1/orders/${order.id}`)
          .send({ ...toView(order), tunnelId: order.result['tunnelId'] as string });
      },
    );

    v1.get(
      '/tunnels',
      {
        schema: {
          ...requires('read'),
          description: "the tenant's tunnels as tunnel-manager holds them (tunnel.req.list): each path's state, latency and the public half of its key",
          response: { 200: Type.Object({ tunnels: Type.Array(TunnelView) }), 503: ErrorBody },
        },
      },
      async (request) => ({ tunnels: await fleet.tunnels(callerOf(request).tenantId) }),
    );

    v1.get(
      '/tunnels/:id',
      {
        schema: {
          ...requires('read'),
          description: "one tunnel (tunnel.req.list); another tenant's is a 404 like a missing one",
          params: Params,
          response: { 200: TunnelView, 404: ErrorBody, 503: ErrorBody },
        },
      },
      async (request) => tunnelOr404(callerOf(request).tenantId, request.params.id),
    );

    ownOrderRoute(plugin, place, {
      method: 'DELETE',
      url: '/tunnels/:id',
      description: 'places a tunnel.close order: tunnel-manager closes the endpoint, takes the paths down and drops their keys (tunnel.cmd.close)',
      check: tunnelOr404,
      order: (tunnelId) => ({ type: 'tunnel.close', tunnelId }),
    });
    ownOrderRoute(plugin, place, {
      method: 'POST',
      url: '/tunnels/:id/rotate',
      description: "places a tunnel.rotate order: tunnel-manager rotates the keys of the tunnel's paths now, keeping open connections (tunnel.cmd.rotate)",
      check: tunnelOr404,
      order: (tunnelId) => ({ type: 'tunnel.rotate', tunnelId }),
    });
  };
}
