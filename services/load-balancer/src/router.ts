import type { BalancingStrategy } from '@switchyard/contracts';
import { choose, newPickState, type PickState } from './select.js';
import { regionOf, type RegionRange } from './settings.js';
import type { RouteNode, RoutePool, RoutingTable } from './table.js';

/** Who is asking and what the username said about where to go. */
export interface Client {
  readonly address: string | undefined;
  readonly region?: string | undefined;
  readonly session?: string | undefined;
}

export interface StrategySource {
  /** The tenant's default strategy, if one was set. */
  get(tenantId: string): BalancingStrategy | undefined;
}

export interface Route {
  readonly pools: RoutePool[];
  readonly members: RouteNode[];
}

/**
 * Turns a routing table plus a client into node choices: which pools are candidates, which
 * strategy, sticky key and region apply, and one pick state per pool group.
 */
export class Router {
  private readonly states = new Map<string, PickState>();

  constructor(
    private readonly table: RoutingTable,
    private readonly strategies: StrategySource,
    private readonly defaultStrategy: BalancingStrategy,
    private readonly regions: readonly RegionRange[],
  ) {}

  strategyOf(pool: RoutePool): BalancingStrategy {
    return pool.spec.strategy ?? this.strategies.get(pool.tenantId) ?? this.defaultStrategy;
  }

  /** Exit pools of a country, or of any country (one tenant's, or every tenant's when unscoped). */
  exitRoute(country: string | undefined, tenantId: string | undefined): Route {
    const pools = this.table.exitPools(country, tenantId);
    if (pools.length === 1) return { pools, members: pools[0]!.members };
    return { pools, members: pools.flatMap((p) => p.members) };
  }

  poolRoute(poolId: string, tenantId?: string): Route {
    const pool = this.table.pool(poolId);
    if (!pool || (tenantId && pool.tenantId !== tenantId)) return { pools: [], members: [] };
    return { pools: [pool], members: pool.members };
  }

  /**
   * The node for a connection (advance: the round-robin cursor moves; without it this is a
   * peek, as `lb.req.best` needs). The first pool's spec decides for a group of pools.
   */
  pick(route: Route, client: Client, exclude?: ReadonlySet<string>, advance = true): RouteNode | undefined {
    const lead = route.pools[0];
    if (!lead || route.members.length === 0) return undefined;
    const spec = lead.spec;
    const stickyKey = spec.sticky === 'session' ? client.session : spec.sticky === 'client_ip' ? client.address : undefined;
    const clientRegion = spec.geoAffinity ? (client.region ?? regionOf(this.regions, client.address)) : undefined;
    return choose(route.members, { strategy: this.strategyOf(lead), stickyKey, clientRegion, exclude }, this.stateOf(route), advance) as RouteNode | undefined;
  }

  private stateOf(route: Route): PickState {
    const key = route.pools.length === 1 ? route.pools[0]!.id : route.pools.map((p) => p.id).join(',');
    let s = this.states.get(key);
    if (!s) {
      s = newPickState();
      this.states.set(key, s);
    }
    return s;
  }
}
