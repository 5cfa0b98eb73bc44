import type { Redis } from 'ioredis';
import { Rejection } from '@switchyard/bus';
import type { BalancingStrategy, Payload, ReplyOf } from '@switchyard/contracts';
import { trafficKey } from './counters.js';
import type { Router } from './router.js';
import type { StrategyStore } from './strategies.js';
import type { RoutingTable } from './table.js';

/** lb.req.best: the node the next connection would get, without taking it. */
export function bestNode(router: Router, p: Payload<'lb.req.best'>): ReplyOf<'lb.req.best'> {
  if (!p.poolId && !p.country) throw new Rejection('country or poolId is required');
  const route = p.poolId ? router.poolRoute(p.poolId, p.tenantId) : router.exitRoute(p.country!.toUpperCase(), p.tenantId);
  const node = router.pick(route, { address: undefined, region: p.clientRegion }, undefined, false);
  if (!node) return { node: null };
  return { node: { nodeId: node.id, poolId: node.poolId, strategy: router.strategyOf(route.pools.find((x) => x.id === node.poolId) ?? route.pools[0]!) } };
}

export async function strategy(store: StrategyStore, fallback: BalancingStrategy, p: Payload<'lb.req.strategy'>): Promise<ReplyOf<'lb.req.strategy'>> {
  if (p.strategy) await store.set(p.tenantId, p.strategy);
  return { strategy: p.strategy ?? store.get(p.tenantId) ?? fallback };
}

const int = (v: string | undefined) => Math.max(0, Math.trunc(Number(v ?? 0)) || 0);

/** lb.req.traffic: counters every process added to Redis, for the asked nodes or the tenant's. */
export async function traffic(redis: Redis, table: RoutingTable, p: Payload<'lb.req.traffic'>): Promise<ReplyOf<'lb.req.traffic'>> {
  let ids = p.nodeIds;
  if (!ids) ids = [...table.allNodes()].filter((n) => !p.tenantId || n.tenantId === p.tenantId).map((n) => n.id);
  else if (p.tenantId) ids = ids.filter((id) => table.node(id)?.tenantId === p.tenantId);
  if (ids.length === 0) return { nodes: [] };
  const pipe = redis.pipeline();
  for (const id of ids) pipe.hgetall(trafficKey(id));
  const results = (await pipe.exec()) ?? [];
  return {
    nodes: ids.map((nodeId, i) => {
      const h = (results[i]?.[1] ?? {}) as Record<string, string>;
      return {
        nodeId,
        activeConnections: int(h['active']),
        totalConnections: int(h['total']),
        failedConnections: int(h['failed']),
        rxBytes: int(h['rx']),
        txBytes: int(h['tx']),
      };
    }),
  };
}
