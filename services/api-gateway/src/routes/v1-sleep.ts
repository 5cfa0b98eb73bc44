import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { ActivatorMode, CatchView, Id, SLEEP_POLICY_DEFAULTS, SleepPolicy, SleepPolicyInput, sleepPolicyIssues, Timestamp, withSleepDefaults } from '@switchyard/contracts';
import type { Kysely } from '@switchyard/db';
import type { Fleet } from '../fleet.js';
import { callerOf } from '../http/auth.js';
import { badRequest, notFound } from '../http/errors.js';
import { OrderView, toView } from '../orders/schemas.js';
import type { Database } from '../tables.js';
import { requires } from '../scopes.js';
import { ownOrderPlacer, ownOrderRoute } from './own-orders.js';
import { ErrorBody } from './schemas.js';

export interface SleepRouteDeps {
  db: Kysely<Database>;
  fleet: Fleet;
  onOrderPlaced: () => void;
}

const Params = Type.Object({ id: Id });

const PolicyOrder = Type.Object(
  { ...OrderView.properties, policy: SleepPolicy },
  { description: 'the order, and the policy it sets: the body with every omitted field at its default' },
);

export const SleepPolicyView = Type.Object({
  poolId: Id,
  policy: SleepPolicy,
  default: Type.Boolean({ description: 'true when the pool has no policy yet: sleep is off and the other fields are the defaults' }),
  updatedAt: Type.Union([Timestamp, Type.Null()]),
});

export const ActivationView = Type.Object({
  nodeId: Id,
  mode: ActivatorMode,
  state: Type.Union([...CatchView.properties.state.anyOf, Type.Literal('untracked')], {
    description: 'armed: asleep, connections are caught; waking; awake; untracked: the activator has never caught this node',
  }),
  ports: CatchView.properties.ports,
});

/** Sleep policies of pools and manual sleep and wake of nodes (mounted under /v1, behind its key check). */
export function sleepRoutes(deps: SleepRouteDeps): FastifyPluginAsync {
  const { db, fleet } = deps;

  async function poolOr404(tenantId: string, poolId: string): Promise<void> {
    if (!(await fleet.pool(tenantId, poolId))) throw notFound(`no pool ${poolId}`);
  }

  async function nodeOr404(tenantId: string, nodeId: string): Promise<void> {
    if (!(await fleet.node(tenantId, nodeId))) throw notFound(`no node ${nodeId}`);
  }

  const place = ownOrderPlacer(db, deps.onOrderPlaced);

  return async (plugin) => {
    const v1 = plugin.withTypeProvider<TypeBoxTypeProvider>();

    v1.put(
      '/pools/:id/sleep',
      {
        schema: {
          ...requires('pools:write'),
          description:
            'sets the sleep policy of a pool, live: places a pool.sleep_policy order that the sleep controller carries out (sleep.cmd.policy). Omitted fields get their defaults.',
          params: Params,
          body: SleepPolicyInput,
          response: { 202: PolicyOrder, 400: ErrorBody, 404: ErrorBody, 503: ErrorBody },
        },
      },
      async (request, reply) => {
        const policy = withSleepDefaults(request.body);
        const issues = sleepPolicyIssues(policy);
        if (issues.length) throw badRequest(issues);
        const { tenantId } = callerOf(request);
        await poolOr404(tenantId, request.params.id);
        const order = await place(tenantId, { type: 'pool.sleep_policy', poolId: request.params.id, policy });
        return reply
          .code(202)
          .header('location', `/v1/orders/${order.id}`)
          .send({ ...toView(order), policy });
      },
    );

    v1.get(
      '/pools/:id/sleep',
      {
        schema: {
          ...requires('read'),
          description: "the pool's sleep policy as the sleep controller holds it (sleep.req.policy)",
          params: Params,
          response: { 200: SleepPolicyView, 404: ErrorBody, 503: ErrorBody },
        },
      },
      async (request) => {
        const { tenantId } = callerOf(request);
        const poolId = request.params.id;
        await poolOr404(tenantId, poolId);
        const held = await fleet.sleepPolicy(tenantId, poolId);
        if (!held) return { poolId, policy: { enabled: false, ...SLEEP_POLICY_DEFAULTS }, default: true, updatedAt: null };
        return { poolId, policy: held.policy, default: false, updatedAt: held.updatedAt };
      },
    );

    ownOrderRoute(plugin, place, {
      method: 'POST',
      url: '/nodes/:id/sleep',
      description: "places a node.sleep order: the sleep controller arms the catch of the node's ports, then stops it (sleep.cmd.node)",
      check: nodeOr404,
      order: (nodeId) => ({ type: 'node.sleep', nodeId }),
    });

    v1.get(
      '/nodes/:id/activation',
      {
        schema: {
          ...requires('read'),
          description:
            "how the socket activator reaches the node (activator.req.state): whether its ports are caught, and in proxy mode the activator's public port for each, which clients use",
          params: Params,
          response: { 200: ActivationView, 404: ErrorBody, 503: ErrorBody },
        },
      },
      async (request) => {
        const { tenantId } = callerOf(request);
        const nodeId = request.params.id;
        await nodeOr404(tenantId, nodeId);
        const { mode, node } = await fleet.activation(tenantId, nodeId);
        return { nodeId, mode, state: node?.state ?? ('untracked' as const), ports: node?.ports ?? [] };
      },
    );

    ownOrderRoute(plugin, place, {
      method: 'POST',
      url: '/nodes/:id/wake',
      description: 'places a node.wake order: exit-node-manager starts the sleeping node (node.cmd.wake)',
      check: nodeOr404,
      order: (nodeId) => ({ type: 'node.wake', nodeId }),
    });
  };
}
