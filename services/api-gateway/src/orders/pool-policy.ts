/**
 * What a tenant may ask of the fleet: which images and networks its pools use, how much a
 * node may take, how many pools and nodes it holds and how fast it adds nodes. A member key
 * belongs to a customer who may attack, so the operator decides all of it (api-gateway's
 * config). Plain functions of typed input; `pool-guard.ts` feeds them and answers HTTP.
 */
import type { Issue, PoolSpec } from '@switchyard/contracts';
import type { Caller } from '../keys.js';
import type { OrderRequest } from './schemas.js';

export interface PoolLimits {
  /** Images a member's pool may run (POOL_IMAGES), compared as written. */
  images: readonly string[];
  /** Tenant ids or names that may ask for `network: host` besides the admin tenant (HOST_NETWORK_TENANTS). */
  hostNetworkTenants: readonly string[];
  adminTenantName: string;
  maxMemoryMb: number;
  maxCpus: number;
  maxPids: number;
  maxPools: number;
  /** Bound on the sum of every pool's nodes.max (see `capacityOf`). */
  maxNodes: number;
  nodeAddsPerMinute: number;
}

export interface PolicyConfig {
  EXIT_NODE_IMAGE: string;
  POOL_IMAGES?: string | undefined;
  HOST_NETWORK_TENANTS?: string | undefined;
  ADMIN_TENANT_NAME: string;
  POOL_MAX_MEMORY_MB: number;
  POOL_MAX_CPUS: number;
  POOL_MAX_PIDS: number;
  TENANT_MAX_POOLS: number;
  TENANT_MAX_NODES: number;
  TENANT_NODE_ADDS_PER_MINUTE: number;
}

const list = (value: string | undefined) =>
  (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

export function limitsOf(config: PolicyConfig): PoolLimits {
  const images = list(config.POOL_IMAGES);
  return {
    images: images.length ? images : [config.EXIT_NODE_IMAGE],
    hostNetworkTenants: list(config.HOST_NETWORK_TENANTS),
    adminTenantName: config.ADMIN_TENANT_NAME,
    maxMemoryMb: config.POOL_MAX_MEMORY_MB,
    maxCpus: config.POOL_MAX_CPUS,
    maxPids: config.POOL_MAX_PIDS,
    maxPools: config.TENANT_MAX_POOLS,
    maxNodes: config.TENANT_MAX_NODES,
    nodeAddsPerMinute: config.TENANT_NODE_ADDS_PER_MINUTE,
  };
}

/** Admin keys are the operator's own: exempt from the image, network, quota and rate rules. */
export const isExempt = (caller: Caller) => caller.role === 'admin';

/**
 * What a pool spec asks that the caller may not have. Paths are relative to the order body
 * ("pool.image"). The resource maxima bind every caller: they are the operator's bound on
 * what a container may take, and exit-node-manager enforces the same ones.
 */
export function specRefusals(spec: PoolSpec, caller: Caller, limits: PoolLimits): Issue[] {
  const issues: Issue[] = [];
  if (!isExempt(caller)) {
    // An exit pool without an image runs the operator's exit-node image.
    if (spec.image !== undefined && !limits.images.includes(spec.image)) {
      issues.push({ path: 'pool.image', message: `image "${spec.image}" is not allowed here; allowed: ${limits.images.join(', ')} (POOL_IMAGES)` });
    }
    if (spec.network === 'host' && !mayUseHostNetwork(caller, limits)) {
      issues.push({ path: 'pool.network', message: 'network "host" is for the operator and the tenants it lists (HOST_NETWORK_TENANTS)' });
    }
  }
  const r = spec.resources;
  const over = (field: string, value: number | undefined, max: number, variable: string) => {
    if (value !== undefined && value > max) issues.push({ path: `pool.resources.${field}`, message: `at most ${max} (${variable})` });
  };
  over('memoryMb', r?.memoryMb, limits.maxMemoryMb, 'POOL_MAX_MEMORY_MB');
  over('cpus', r?.cpus, limits.maxCpus, 'POOL_MAX_CPUS');
  over('pids', r?.pids, limits.maxPids, 'POOL_MAX_PIDS');
  return issues;
}

function mayUseHostNetwork(caller: Caller, limits: PoolLimits): boolean {
  if (caller.tenantName === limits.adminTenantName) return true;
  return limits.hostNetworkTenants.some((t) => t === caller.tenantId || t === caller.tenantName);
}

/** One pool as the quotas see it. */
export interface PoolUsage {
  poolId: string;
  name: string;
  kind: PoolSpec['kind'];
  country?: string | undefined;
  min: number;
  max: number;
}

/** The tenant's pools, live and ordered (see `withPending`). */
export type TenantUsage = readonly PoolUsage[];

/**
 * The nodes a tenant can hold: the sum of its pools' nodes.max. It counts what the pools may
 * grow to, not what runs now, so a quota cannot be passed by scaling up nodes.min later.
 */
export const capacityOf = (usage: TenantUsage) => usage.reduce((sum, p) => sum + Math.max(p.min, p.max), 0);

/** node.cmd.add puts a country's nodes in the pool of this name, made when missing (exit-node-manager's addedPoolSpec). */
const addedPoolName = (country: string) => `exit-${country.toLowerCase()}`;

/**
 * The tenant's pools once the order is carried out, as exit-node-manager would carry it
 * out. `newPoolId` names a pool the order makes.
 */
export function afterOrder(usage: TenantUsage, order: OrderRequest, newPoolId = 'new'): TenantUsage {
  switch (order.type) {
    case 'pool.create': {
      const s = order.pool!;
      return [...usage, { poolId: newPoolId, name: s.name, kind: s.kind, country: s.country?.toUpperCase(), min: s.nodes.min, max: s.nodes.max }];
    }
    case 'pool.scale':
      return usage.map((p) => (p.poolId === order.poolId ? { ...p, min: order.nodes!.min, max: order.nodes!.max } : p));
    case 'pool.delete':
      return usage.filter((p) => p.poolId !== order.poolId);
    case 'node.add': {
      const name = addedPoolName(order.country!);
      const pool = usage.find((p) => p.name === name);
      // A node past the pool's maximum raises it (exit-node-manager's appendNode).
      if (pool) return usage.map((p) => (p === pool ? { ...p, min: p.min + 1, max: Math.max(p.max, p.min + 1) } : p));
      return [...usage, { poolId: newPoolId, name, kind: 'exit', country: order.country!.toUpperCase(), min: 1, max: 1 }];
    }
    default:
      return usage;
  }
}

/** Where the field a quota refusal names lives in each order type's body. */
const QUOTA_FIELD: Partial<Record<OrderRequest['type'], { pools: string; nodes: string }>> = {
  'pool.create': { pools: 'pool', nodes: 'pool.nodes.max' },
  'pool.scale': { pools: 'poolId', nodes: 'nodes.max' },
  'node.add': { pools: 'country', nodes: 'country' },
};

/**
 * The count quotas the order would break. Only growth is refused: with a quota lowered
 * below what a tenant holds, it can still scale down and delete.
 */
export function quotaRefusals(before: TenantUsage, order: OrderRequest, limits: PoolLimits): Issue[] {
  const field = QUOTA_FIELD[order.type];
  if (!field) return [];
  const after = afterOrder(before, order);
  const issues: Issue[] = [];
  if (after.length > limits.maxPools && after.length > before.length) {
    issues.push({ path: field.pools, message: `a tenant may have at most ${limits.maxPools} pools (TENANT_MAX_POOLS); it has ${before.length}` });
  }
  const [was, will] = [capacityOf(before), capacityOf(after)];
  if (will > limits.maxNodes && will > was) {
    issues.push({
      path: field.nodes,
      message: `a tenant's pools may hold at most ${limits.maxNodes} nodes in all (TENANT_MAX_NODES, the sum of nodes.max); they hold ${was} and this order makes it ${will}`,
    });
  }
  return issues;
}

/**
 * How many nodes the order starts at once, for the per-minute rate: node.add one, a pool
 * its nodes.min, a scale-up what it adds to nodes.min. An order larger than a minute's budget
 * counts as the whole budget, so a big scale-up waits for a quiet minute instead of never passing.
 */
export function nodeAdditions(before: TenantUsage, order: OrderRequest, limits: PoolLimits): number {
  let adds = 0;
  if (order.type === 'node.add') adds = 1;
  if (order.type === 'pool.create') adds = order.pool!.nodes.min;
  if (order.type === 'pool.scale') {
    const pool = before.find((p) => p.poolId === order.poolId);
    adds = pool ? Math.max(0, order.nodes!.min - pool.min) : 0;
  }
  return Math.min(adds, limits.nodeAddsPerMinute);
}

/** Where the field a rate refusal names lives. */
export const RATE_FIELD: Partial<Record<OrderRequest['type'], string>> = { 'pool.create': 'pool.nodes.min', 'pool.scale': 'nodes.min', 'node.add': 'country' };

/** An order the gateway stored and exit-node-manager has not finished. */
export interface PendingOrder {
  request: OrderRequest;
  /** What the order knew up front: the pool id of a pool.create, the node id of a node.add. */
  result: { poolId?: string; nodeId?: string };
}

/**
 * The snapshot plus the orders still on their way, so that orders placed in quick succession
 * count each other. An order the snapshot already shows is not counted twice.
 */
export function withPending(snapshot: TenantUsage, knownNodeIds: ReadonlySet<string>, pending: readonly PendingOrder[]): TenantUsage {
  let usage = snapshot;
  for (const o of pending) {
    const { request, result } = o;
    if (request.type === 'pool.create' && result.poolId && !usage.some((p) => p.poolId === result.poolId)) {
      usage = afterOrder(usage, request, result.poolId);
    } else if (request.type === 'node.add' && !(result.nodeId && knownNodeIds.has(result.nodeId))) {
      usage = afterOrder(usage, request, `pending:${result.nodeId}`);
    } else if (request.type === 'pool.scale') {
      // Whichever of the sizes wins, the larger one is what the tenant may come to hold.
      usage = usage.map((p) => (p.poolId === request.poolId ? { ...p, min: Math.max(p.min, request.nodes!.min), max: Math.max(p.max, request.nodes!.max) } : p));
    }
  }
  return usage;
}
