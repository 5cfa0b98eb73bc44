import { isBusUnavailable, type Bus } from '@switchyard/bus';
import { catalog, type NodeHealth, type NodeTraffic, type NodeView, type PoolView, type Payload, type ReplyOf, type RequestSubject } from '@switchyard/contracts';
import { requestPoolSnapshot, SnapshotExpired } from '@switchyard/service-kit';
import { ServiceUnavailable } from './http/errors.js';

type Asked = RequestSubject;
export type TunnelView = ReplyOf<'tunnel.req.list'>['tunnels'][number];

/** A figure that may be missing because the service that has it did not answer. */
export interface Optional<T> {
  value: T;
  /** The service that did not answer; `value` is then the empty default. */
  unavailable?: string;
}

export interface FleetDeps {
  bus: Pick<Bus, 'request'>;
  natsConnected: () => boolean;
  timeoutMs: number;
  speedTestTimeoutMs: number;
}

/**
 * The gateway's questions to the services that own nodes, health and routing. A question the
 * call cannot do without fails as a 503 naming the silent service; health and counters are
 * optional and degrade to "unknown" and zeros, saying which service was missing.
 */
export function createFleet(deps: FleetDeps) {
  const { bus } = deps;

  async function ask<S extends Asked>(subject: S, payload: Payload<S>, timeoutMs = deps.timeoutMs): Promise<ReplyOf<S>> {
    try {
      return await bus.request(subject, payload, { timeoutMs });
    } catch (err) {
      // With NATS itself away the error handler's "message bus unavailable" is the truth.
      if (isBusUnavailable(err) && deps.natsConnected()) throw new ServiceUnavailable(catalog[subject].responder);
      throw err;
    }
  }

  async function optional<S extends Asked, T>(subject: S, payload: Payload<S>, pick: (reply: ReplyOf<S>) => T, empty: T): Promise<Optional<T>> {
    try {
      return { value: pick(await ask(subject, payload)) };
    } catch (err) {
      if (err instanceof ServiceUnavailable) return { value: empty, unavailable: err.service };
      throw err;
    }
  }

  /** The tenant's pools and nodes; an owner too busy to cut them (it answers `expired`) is a 503 like a silent one. */
  async function tenantSnapshot(tenantId: string): Promise<{ pools: PoolView[]; nodes: NodeView[] }> {
    try {
      return await requestPoolSnapshot((q) => ask('pool.req.snapshot', q), { tenantId });
    } catch (err) {
      if (err instanceof SnapshotExpired) throw new ServiceUnavailable(catalog['pool.req.snapshot'].responder);
      throw err;
    }
  }

  return {
    snapshot: tenantSnapshot,
    /** Another tenant's pool is indistinguishable from a missing one. */
    async pool(tenantId: string, poolId: string): Promise<PoolView | undefined> {
      const { pools } = await tenantSnapshot(tenantId);
      return pools.find((p) => p.poolId === poolId && p.tenantId === tenantId);
    },
    /** The pool's policy as the sleep controller holds it; undefined when it has none. */
    async sleepPolicy(tenantId: string, poolId: string) {
      const { policies } = await ask('sleep.req.policy', { tenantId, poolId });
      return policies.find((p) => p.poolId === poolId && p.tenantId === tenantId);
    },
    /** How the socket activator reaches the node: its mode and, if it knows the node, its catch. */
    async activation(tenantId: string, nodeId: string) {
      const reply = await ask('activator.req.state', { tenantId, nodeIds: [nodeId] });
      return { mode: reply.mode, node: reply.nodes.find((n) => n.nodeId === nodeId && n.tenantId === tenantId) };
    },
    async nodes(tenantId: string, poolId?: string): Promise<NodeView[]> {
      return (await ask('node.req.list', { tenantId, ...(poolId ? { poolId } : {}) })).nodes;
    },
    /** Another tenant's node is indistinguishable from a missing one. */
    async node(tenantId: string, nodeId: string): Promise<NodeView | undefined> {
      const { nodes } = await ask('node.req.list', { tenantId, nodeId });
      return nodes.find((n) => n.nodeId === nodeId && n.tenantId === tenantId);
    },
    async health(tenantId: string, nodeIds: string[]): Promise<Optional<Map<string, NodeHealth>>> {
      if (!nodeIds.length) return { value: new Map() };
      return optional('health.req.status', { tenantId, nodeIds }, (r) => new Map(r.nodes.map((h) => [h.nodeId, h])), new Map());
    },
    async traffic(tenantId: string, nodeIds: string[]): Promise<Optional<Map<string, NodeTraffic>>> {
      if (!nodeIds.length) return { value: new Map() };
      return optional('lb.req.traffic', { tenantId, nodeIds }, (r) => new Map(r.nodes.map((t) => [t.nodeId, t])), new Map());
    },
    async logs(tenantId: string, nodeId: string, lines: number) {
      return ask('node.req.logs', { tenantId, nodeId, lines });
    },
    async best(query: Payload<'lb.req.best'>) {
      return (await ask('lb.req.best', query)).node;
    },
    async strategy(tenantId: string, strategy?: Payload<'lb.req.strategy'>['strategy']) {
      return (await ask('lb.req.strategy', { tenantId, ...(strategy ? { strategy } : {}) })).strategy;
    },
    /** The tenant's tunnels as tunnel-manager holds them; filtered here too, so another tenant's never shows. */
    async tunnels(tenantId: string): Promise<TunnelView[]> {
      return (await ask('tunnel.req.list', { tenantId })).tunnels.filter((t) => t.tenantId === tenantId);
    },
    /** Another tenant's tunnel is indistinguishable from a missing one. */
    async tunnel(tenantId: string, tunnelId: string): Promise<TunnelView | undefined> {
      const { tunnels } = await ask('tunnel.req.list', { tenantId, tunnelId });
      return tunnels.find((t) => t.tunnelId === tunnelId && t.tenantId === tenantId);
    },
    async speedTest(tenantId: string, nodeId: string) {
      return ask('health.req.speedtest', { tenantId, nodeId }, deps.speedTestTimeoutMs);
    },
  };
}
export type Fleet = ReturnType<typeof createFleet>;

/** Health and counters of some nodes, with the services that could not say. */
export interface NodeFigures {
  health: Map<string, NodeHealth>;
  traffic: Map<string, NodeTraffic>;
  unavailable: string[];
}

export async function figuresOf(fleet: Fleet, tenantId: string, nodeIds: string[]): Promise<NodeFigures> {
  const [health, traffic] = await Promise.all([fleet.health(tenantId, nodeIds), fleet.traffic(tenantId, nodeIds)]);
  return {
    health: health.value,
    traffic: traffic.value,
    unavailable: [health.unavailable, traffic.unavailable].filter((s): s is string => s !== undefined),
  };
}
