import type { NodeView, PoolView, TunnelSpec } from '@switchyard/contracts';
import { OrderFailure } from '@switchyard/service-kit';
import { type NodeRoute, nodeRoute, poolRoute, publishedPort } from './plan.js';

/** The tenant's pools and nodes as exit-node-manager holds them; `complete`: no row was left out. */
export interface FleetView {
  pools: readonly PoolView[];
  nodes: readonly NodeView[];
  complete: boolean;
}

/** The node (or pool) is not, or no longer, in exit-node-manager's view of the tenant; `complete`: the view left no row out. */
export class UnknownNode extends OrderFailure {
  constructor(
    message: string,
    readonly complete: boolean,
  ) {
    super(message);
  }
}

/** Where the node side dials for a tunnel's spec, from the view; why not, as an order's failure. */
export function resolveRoute({ pools, nodes, complete }: FleetView, spec: TunnelSpec): NodeRoute {
  if (spec.poolId !== undefined) {
    const pool = pools.find((p) => p.poolId === spec.poolId);
    if (!pool) throw new UnknownNode(`unknown pool ${spec.poolId}`, complete);
    const route = poolRoute(pool, nodes, spec.port);
    if (typeof route === 'string') throw new OrderFailure(`port ${spec.port}: ${route}`);
    return route;
  }
  const node = nodes.find((n) => n.nodeId === spec.nodeId && n.status !== 'removed');
  if (!node) throw new UnknownNode(`unknown node ${spec.nodeId}`, complete);
  const port = publishedPort(node.ports, spec.port);
  if (typeof port === 'string') throw new OrderFailure(`port ${spec.port}: ${port}`);
  return nodeRoute(port);
}
