import { randomUUID } from 'node:crypto';
import type { NodeHealth, NodeView, PoolSpec, PoolView, PublishedPort } from '@switchyard/contracts';

// Builders of the views services exchange, one per shape, for unit and integration tests
// alike: this module imports no NATS, Docker or database code. Each builder gives a valid
// value and takes overrides for what the test is about.

export const TEST_TENANT_ID = '0c0ffee0-1234-4abc-8def-0123456789ab';

/** A pool of TEST_TENANT_ID with a fresh id; `spec` defaults to an exit pool of one to three nodes. */
export function aPoolView(spec: Partial<PoolSpec> = {}, view: Partial<Pick<PoolView, 'tenantId' | 'poolId'>> = {}): PoolView {
  const full = { name: 'pool', kind: 'exit', nodes: { min: 1, max: 3 }, ...spec } as PoolSpec;
  return { tenantId: TEST_TENANT_ID, poolId: randomUUID(), ...view, name: full.name, spec: full };
}

/**
 * A running node with a fresh id and no ports; given a `pool`, it belongs to that pool (tenant,
 * pool id, kind, country and region from it) unless the overrides say otherwise.
 */
export function aNodeView(overrides: Partial<NodeView> & { pool?: PoolView } = {}): NodeView {
  const { pool, ...rest } = overrides;
  return {
    tenantId: pool?.tenantId ?? TEST_TENANT_ID,
    poolId: pool?.poolId ?? randomUUID(),
    nodeId: randomUUID(),
    name: 'node',
    kind: pool?.spec.kind ?? 'exit',
    status: 'running',
    country: pool?.spec.country ?? null,
    region: pool?.spec.region ?? null,
    city: null,
    server: null,
    containerId: null,
    ports: [],
    startedAt: null,
    stats: null,
    ...rest,
  };
}

/** A port published on 127.0.0.1 (the container port is the host port unless given). */
export function aPublishedPort(name: string, hostPort: number, containerPort = hostPort, hostIp = '127.0.0.1'): PublishedPort {
  return { name, containerPort, hostIp, hostPort };
}

/**
 * A running node of `pool` that a load balancer reaches on `port`: its one published port
 * (named `proxy` for exit pools, `tcp` otherwise) is on loopback.
 */
export function aNodeServing(pool: PoolView, port: number, extra: Partial<NodeView> = {}): NodeView {
  return aNodeView({
    pool,
    name: `${pool.name}-${port}`,
    ports: [aPublishedPort(pool.spec.kind === 'exit' ? 'proxy' : 'tcp', port)],
    startedAt: new Date().toISOString(),
    ...extra,
  });
}

/** What health-monitor says of a node. */
export function aNodeHealth(node: Pick<NodeView, 'tenantId' | 'poolId' | 'nodeId'>, overrides: Partial<NodeHealth> = {}): NodeHealth {
  return {
    tenantId: node.tenantId,
    poolId: node.poolId,
    nodeId: node.nodeId,
    status: 'healthy',
    score: 100,
    latencyMs: 1,
    lastCheckAt: new Date().toISOString(),
    reason: 'test',
    ...overrides,
  };
}
