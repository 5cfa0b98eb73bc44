import { describe, expect, it } from 'vitest';
import type { NodeView, PoolView } from '@switchyard/contracts';
import { aNodeHealth, aNodeView, aPoolView, aPublishedPort } from '@switchyard/testkit/fixtures';
import { TrafficCounters } from '../src/counters.js';
import { RoutingTable } from '../src/table.js';

const tenantId = '0b3c2f0e-5d4a-4f1e-9f7a-1c2d3e4f5a6b';
const at = new Date().toISOString();

function pool(poolId: string, country: string, limits?: { softConnections: number; hardConnections: number }): PoolView {
  return aPoolView({ name: `p-${country.toLowerCase()}`, kind: 'exit', country, ...(limits ? { limits } : {}) }, { tenantId, poolId });
}

/** An exit node whose proxy port is published on all interfaces, its control port on loopback. */
function node(p: PoolView, nodeId: string, port: number): NodeView {
  return aNodeView({
    pool: p,
    nodeId,
    name: nodeId,
    containerId: 'c',
    startedAt: at,
    ports: [aPublishedPort('control', port + 1, 8000), aPublishedPort('proxy', port, 8888, '0.0.0.0')],
  });
}

describe('routing table', () => {
  const jp = pool('11111111-1111-4111-8111-111111111111', 'JP', { softConnections: 5, hardConnections: 9 });
  const us = pool('22222222-2222-4222-8222-222222222222', 'US');

  function table(workers = 1) {
    const t = new RoutingTable(new TrafficCounters(), workers);
    t.replace({ pools: [jp, us], nodes: [node(jp, 'b', 2000), node(jp, 'a', 1000), node(us, 'c', 3000)] }, [
      aNodeHealth({ tenantId, poolId: jp.poolId, nodeId: 'a' }, { score: 90, latencyMs: 12, lastCheckAt: at, reason: '' }),
    ]);
    return t;
  }

  it('builds members from the snapshot: ordered, with the proxy port on loopback and health', () => {
    const t = table();
    const [group] = t.exitPools('JP', undefined);
    expect(group!.members.map((n) => n.id)).toEqual(['a', 'b']);
    expect(group!.members[0]).toMatchObject({ endpoint: { host: '127.0.0.1', port: 1000 }, health: 'healthy', score: 90, latencyMs: 12, softLimit: 5, hardLimit: 9 });
    expect(group!.members[1]!.health).toBe('unknown');
    expect(t.exitPools('US', tenantId)).toHaveLength(1);
    expect(t.exitPools('US', '33333333-3333-4333-8333-333333333333')).toHaveLength(0);
    expect(t.exitPools(undefined, undefined)).toHaveLength(2);
  });

  it('takes a died, stopped or draining node out at once and forgets its health', () => {
    const t = table();
    t.nodeDown('a', 'error');
    expect(t.exitPools('JP', undefined)[0]!.members.map((n) => n.id)).toEqual(['b']);
    t.nodeStarted({ tenantId, poolId: jp.poolId, nodeId: 'a', at, containerId: 'c', ports: node(jp, 'a', 1500).ports, startMs: 1 });
    const a = t.node('a')!;
    expect(a.health).toBe('unknown');
    expect(a.endpoint).toEqual({ host: '127.0.0.1', port: 1500 });
    t.nodeDraining('b');
    expect(t.exitPools('JP', undefined)[0]!.members.map((n) => n.id)).toEqual(['a']);
    t.nodeRemoved('a');
    expect(t.exitPools('JP', undefined)[0]!.members).toEqual([]);
  });

  it('keeps a node put to sleep in rotation at its endpoint, marked asleep, and a snapshot agrees', () => {
    const t = table();
    t.nodeDown('b', 'sleeping');
    const members = t.exitPools('JP', undefined)[0]!.members;
    expect(members.map((n) => [n.id, n.asleep])).toEqual([
      ['a', false],
      ['b', true],
    ]);
    expect(t.node('b')!.endpoint).toEqual({ host: '127.0.0.1', port: 2000 });
    t.nodeDown('a', 'stopped');
    expect(t.exitPools('JP', undefined)[0]!.members.map((n) => n.id)).toEqual(['b']);
    t.replace({ pools: [jp], nodes: [{ ...node(jp, 'd', 4000), status: 'sleeping' }] }, undefined, Date.now() + 60_000);
    expect(t.exitPools('JP', undefined)[0]!.members.map((n) => [n.id, n.asleep, n.endpoint?.port])).toEqual([['d', true, 4000]]);
    // The stop marked it down; back from sleep it is unchecked again, not unhealthy.
    t.healthChanged({ tenantId, poolId: jp.poolId, nodeId: 'd', at, status: 'unhealthy', score: 0, reason: 'stopped: sleep' });
    t.nodeStarted({ tenantId, poolId: jp.poolId, nodeId: 'd', at, containerId: 'c', ports: node(jp, 'd', 4000).ports, startMs: 1 });
    expect(t.node('d')!.health).toBe('unknown');
  });

  it("takes an app node's endpoint again when its pool is announced after the node started", () => {
    const t = new RoutingTable(new TrafficCounters());
    const appPoolId = '44444444-4444-4444-8444-444444444444';
    const ports = [{ name: 'main', containerPort: 8080, hostIp: '127.0.0.1', hostPort: 5555 }];
    t.nodeStarted({ tenantId, poolId: appPoolId, nodeId: 'x', at, containerId: 'c', ports, startMs: 1 });
    expect(t.node('x')!.endpoint).toBeUndefined();
    t.setPool({
      tenantId,
      poolId: appPoolId,
      name: 'blog',
      spec: { name: 'blog', kind: 'app', image: 'i', nodes: { min: 1, max: 1 }, ports: [{ name: 'main', containerPort: 8080 }] },
      at,
    });
    expect(t.node('x')!.endpoint).toEqual({ host: '127.0.0.1', port: 5555 });
    expect(t.pool(appPoolId)!.members.map((n) => n.id)).toEqual(['x']);
  });

  it('applies health events and keeps draining across a rebuild', () => {
    const t = table();
    t.healthChanged({ tenantId, poolId: jp.poolId, nodeId: 'b', at, status: 'unhealthy', score: 0, reason: 'x' });
    expect(t.node('b')!.health).toBe('unhealthy');
    t.nodeDraining('a');
    t.replace({ pools: [jp, us], nodes: [node(jp, 'a', 1000), node(jp, 'b', 2000)] }, undefined);
    expect(t.node('a')!.draining).toBe(true);
    expect(t.node('b')!.health).toBe('unhealthy');
    t.deletePool(jp.poolId);
    expect(t.node('a')).toBeUndefined();
  });

  it("gives each worker its share of a pool's limits", () => {
    expect(table(4).node('a')).toMatchObject({ softLimit: 2, hardLimit: 3 });
  });

  it('takes new scores and latencies from a refresh but keeps the status events set', () => {
    const t = table();
    t.healthChanged({ tenantId, poolId: jp.poolId, nodeId: 'a', at, status: 'unhealthy', score: 40, reason: 'died' });
    // A reply computed before that event still says healthy: only its figures are taken.
    t.refreshScores([aNodeHealth({ tenantId, poolId: jp.poolId, nodeId: 'a' }, { score: 35, latencyMs: 80, lastCheckAt: at, reason: '' })]);
    const a = t.node('a')!;
    expect(a).toMatchObject({ health: 'unhealthy', score: 35, latencyMs: 80 });
    // A node the table has no health for stays unknown.
    t.refreshScores([aNodeHealth({ tenantId, poolId: jp.poolId, nodeId: 'b' }, { score: 99, latencyMs: 1, lastCheckAt: at, reason: '' })]);
    expect(t.node('b')).toMatchObject({ health: 'unknown', score: 0 });
  });

  it('keeps what events set shortly before a snapshot was asked for, and takes the snapshot for older ones', () => {
    let clock = 100_000;
    const t = new RoutingTable(new TrafficCounters(), 1, () => clock);
    const stale = { pools: [jp, us], nodes: [node(jp, 'a', 1000), node(jp, 'b', 2000), node(us, 'c', 3000)] };
    t.replace(stale, undefined);
    // The events land first; the rows the snapshot reads are written after it.
    t.nodeDown('a', 'error');
    t.nodeDraining('b');
    t.nodeRemoved('c');
    t.nodeStarted({ tenantId, poolId: jp.poolId, nodeId: 'd', at, containerId: 'c', ports: node(jp, 'd', 4000).ports, startMs: 1 });
    clock += 1000;
    t.replace(stale, undefined, clock);
    expect(t.node('a')!.status).toBe('error');
    expect(t.node('b')!.draining).toBe(true);
    expect(t.node('c')).toBeUndefined();
    expect(t.node('d')).toMatchObject({ status: 'running', endpoint: { host: '127.0.0.1', port: 4000 } });
    expect(t.exitPools('JP', undefined)[0]!.members.map((n) => n.id)).toEqual(['d']);
    // Long after the events, the snapshot is the truth again (here: an older picture).
    clock += 10_000;
    t.replace({ pools: [jp, us], nodes: [node(jp, 'a', 1100), node(us, 'c', 3000)] }, undefined, clock);
    expect(t.node('a')).toMatchObject({ status: 'running', endpoint: { host: '127.0.0.1', port: 1100 } });
    expect(t.node('c')!.status).toBe('running');
    expect(t.node('d')).toBeUndefined();
    // A snapshot asked for before an event that its reply crosses keeps the event's word.
    const asked = clock;
    clock += 200;
    t.nodeDown('a', 'stopped');
    t.replace({ pools: [jp, us], nodes: [node(jp, 'a', 1100)] }, undefined, asked);
    expect(t.node('a')!.status).toBe('stopped');
  });
});
