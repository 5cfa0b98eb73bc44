import type { AclDecision, AclGate, AclSource } from '@switchyard/service-kit';
import type { Route } from '../router.js';
import type { RoutePool } from '../table.js';

/** A peer's address as a policy's hosts name it: an IPv4 client of a dual-stack socket without its `::ffff:` prefix. */
export function clientAddress(remote: string | undefined): string {
  if (!remote) return '';
  return remote.startsWith('::ffff:') && remote.includes('.') ? remote.slice(7) : remote;
}

const tagsOf = (pool: RoutePool): readonly string[] => pool.spec.tags ?? [];

/** Why no pool of a route may take the client: every policy refused (counted), or the policies are not known yet. */
export type AclRefusal = 'denied' | 'unknown';

/**
 * The pools of a route this client may reach, each judged by its own tenant's policy (a pool of
 * a tenant without a policy takes everyone, as before policies). `denied` when the route had
 * pools and every one refused: then each refusing (tenant, rule) is counted once. `unknown`
 * before the worker first read the policies: it cannot tell an open pool from a guarded one.
 * `port`: what the policy judges (the CONNECT/SOCKS target's port, an app pool's public port).
 */
export function admitRoute(acl: AclGate, route: Route, src: AclSource, port: number, where: string): Route | AclRefusal {
  // No policy anywhere: the route as it is, no allocation.
  if (acl.idle || route.pools.length === 0) return route;
  if (!acl.ready) return 'unknown';
  let allowed: RoutePool[] | undefined;
  let denials: Array<[RoutePool, AclDecision]> | undefined;
  for (let i = 0; i < route.pools.length; i++) {
    const pool = route.pools[i]!;
    const d = acl.decide(pool.tenantId, src, { tags: tagsOf(pool), port });
    if (!d || d.allowed) {
      allowed?.push(pool);
      continue;
    }
    allowed ??= route.pools.slice(0, i);
    (denials ??= []).push([pool, d]);
  }
  if (!denials) return route;
  if (allowed!.length > 0) return { pools: allowed!, members: allowed!.flatMap((p) => p.members) };
  const counted = new Set<string>();
  for (const [pool, d] of denials) {
    const key = `${pool.tenantId}/${d.rule}`;
    if (counted.has(key)) continue;
    counted.add(key);
    acl.denied(pool.tenantId, d, src, { tags: tagsOf(pool), port }, where);
  }
  return 'denied';
}
