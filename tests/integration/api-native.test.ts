import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { request } from 'node:http';
import type { NatsConnection } from '@nats-io/transport-node';
import { natsRequest, eventually, startApiSystem, type ApiSystem } from '@switchyard/testkit';

// The native /v1 pools, nodes and speed tests against the real services, then what the
// gateway answers as health-monitor, load-balancer and exit-node-manager go away.
describe('the /v1 pools and nodes API', () => {
  let s: ApiSystem;
  let nc: NatsConnection;
  let poolId: string;
  let nodeIds: string[];
  let otherKey: string;

  beforeAll(async () => {
    s = await startApiSystem();
    nc = await s.sys.natsClient();
    const placed = await s.sys.http('POST', '/v1/orders', {
      body: { type: 'pool.create', pool: { name: 'osaka', kind: 'exit', country: 'jp', network: 'host', nodes: { min: 2, max: 2 } } },
    });
    expect(placed.status).toBe(202);
    const order = await s.sys.waitForOrder(placed.body.id, ['fulfilled', 'failed'], { timeoutMs: 60_000 });
    expect(order.status).toBe('fulfilled');
    poolId = order.result.poolId;
    nodeIds = order.result.nodeIds;
    otherKey = (await s.sys.http('POST', '/v1/tenants', { body: { name: 'other' } })).body.apiKey;
  }, 120_000);
  afterAll(async () => {
    await s?.close();
  });

  const nodeOf = async (id: string) => (await s.sys.http('GET', `/v1/nodes/${id}`)).body;

  it('lists and shows pools with their nodes; another tenant sees none of them', async () => {
    const listed = await s.sys.http('GET', '/v1/pools');
    expect(listed.status).toBe(200);
    expect(listed.body.pools).toHaveLength(1);
    const pool = listed.body.pools[0];
    expect(pool).toMatchObject({ id: poolId, name: 'osaka', spec: { kind: 'exit', country: 'JP', network: 'host', nodes: { min: 2, max: 2 } } });
    expect(pool.nodes.map((n: any) => n.id).sort()).toEqual([...nodeIds].sort());
    for (const n of pool.nodes) expect(n).toMatchObject({ poolId, kind: 'exit', country: 'JP', ports: expect.any(Array) });

    // Stats are sampled between the two calls: compare what does not move.
    const one = (await s.sys.http('GET', `/v1/pools/${poolId}`)).body;
    expect({ ...one, nodes: one.nodes.map((n: any) => n.id) }).toEqual({ ...pool, nodes: pool.nodes.map((n: any) => n.id) });
    expect((await s.sys.http('GET', '/v1/pools', { key: otherKey })).body).toEqual({ pools: [] });
    expect((await s.sys.http('GET', `/v1/pools/${poolId}`, { key: otherKey })).status).toBe(404);
    expect((await s.sys.http('GET', `/v1/pools/${randomUUID()}`)).status).toBe(404);
    const bad = await s.sys.http('GET', '/v1/pools/osaka');
    expect(bad.status).toBe(400);
    expect(bad.body.issues[0].field).toBe('params.id');
  });

  it('shows a node with its health and traffic once checked', async () => {
    const node = await eventually(
      () => nodeOf(nodeIds[0]!),
      (n) => n.health?.status === 'healthy',
      60_000,
      'healthy node',
    );
    expect(node).toMatchObject({ id: nodeIds[0], poolId, status: 'running', kind: 'exit', unavailable: [] });
    expect(node.health).toMatchObject({ status: 'healthy', score: expect.any(Number), lastCheckAt: expect.any(String) });
    expect(Object.keys(node.traffic).sort()).toEqual(['activeConnections', 'failedConnections', 'rxBytes', 'totalConnections', 'txBytes']);
    for (const v of Object.values(node.traffic)) expect(Number.isInteger(v)).toBe(true);
    expect((await s.sys.http('GET', `/v1/nodes/${nodeIds[0]}`, { key: otherKey })).status).toBe(404);
  }, 90_000);

  it('names the best node of a pool', async () => {
    await eventually(
      () => nodeOf(nodeIds[1]!),
      (n) => n.health?.status === 'healthy',
      60_000,
      'second node healthy',
    );
    const best = await s.sys.http('GET', `/v1/pools/${poolId}/best-node`);
    expect(best.status).toBe(200);
    expect(nodeIds).toContain(best.body.node.id);
    expect(typeof best.body.strategy).toBe('string');
    expect((await s.sys.http('GET', `/v1/pools/${poolId}/best-node`, { key: otherKey })).status).toBe(404);
  }, 90_000);

  it("shows the load balancer's counters of connections through the pool", async () => {
    const total = async () => {
      const nodes = await Promise.all(nodeIds.map(nodeOf));
      return nodes.reduce((sum, n) => sum + n.traffic.totalConnections, 0);
    };
    const before = await total();
    for (let i = 0; i < 3; i++) expect(await viaLoadBalancer(s.proxyPort, `${s.target.url}/204`)).toBe(204);
    await eventually(total, (n) => n >= before + 3, 10_000, 'three more connections counted');
  }, 30_000);

  it('answers the last lines of a node log', async () => {
    const res = await s.sys.http('GET', `/v1/nodes/${nodeIds[0]}/logs?lines=3`);
    expect(res.status).toBe(200);
    expect(res.body.logs).toBeInstanceOf(Array);
    expect(res.body.logs.length).toBeGreaterThanOrEqual(1);
    expect(res.body.logs.length).toBeLessThanOrEqual(3);
    expect(res.body.lines).toBe(res.body.logs.length);
    // The exit-node image logs one line when it listens, and nothing per request.
    expect(res.body.logs.some((l: string) => l.includes('exit-node: http proxy on '))).toBe(true);
    const bad = await s.sys.http('GET', `/v1/nodes/${nodeIds[0]}/logs?lines=0`);
    expect(bad.status).toBe(400);
    expect(bad.body.issues[0].field).toBe('query.lines');
    expect((await s.sys.http('GET', `/v1/nodes/${nodeIds[0]}/logs`, { key: otherKey })).status).toBe(404);
  });

  it('runs a speed test and lists stored results, including those announced by event only', async () => {
    const ran = await s.sys.http('POST', `/v1/nodes/${nodeIds[0]}/speedtest`);
    expect(ran.status, JSON.stringify(ran.body)).toBe(200);
    expect(ran.body).toMatchObject({ nodeId: nodeIds[0], downloadMbps: expect.any(Number), uploadMbps: expect.any(Number), latencyMs: expect.any(Number) });
    expect((await s.sys.http('GET', `/v1/speedtests?nodeId=${nodeIds[0]}`)).body.results).toEqual([ran.body]);

    // Asked of the health monitor directly: the gateway learns it from health.evt.speedtest.
    const [tenant] = await s.sys.db.query<{ id: string }>("select id from tenants where name = 'admin'");
    const direct = await natsRequest<{ result: { at: string } | null; error?: string }>(nc, 'health.req.speedtest', { tenantId: tenant!.id, nodeId: nodeIds[1] }, 30_000);
    expect(direct.error).toBeUndefined();
    const stored = await eventually(
      async () => (await s.sys.http('GET', `/v1/speedtests?nodeId=${nodeIds[1]}`)).body.results,
      (r: any[]) => r.length === 1,
      15_000,
      'speed test stored from its event',
    );
    expect(stored[0]).toMatchObject({ nodeId: nodeIds[1], testedAt: new Date(direct.result!.at).toISOString() });
    expect((await s.sys.http('GET', '/v1/speedtests', { key: otherKey })).body.results).toEqual([]);
    expect((await s.sys.http('POST', `/v1/nodes/${nodeIds[0]}/speedtest`, { key: otherKey })).status).toBe(404);
  }, 90_000);

  it('restarts a node through an order', async () => {
    const res = await s.sys.http('POST', `/v1/nodes/${nodeIds[1]}/restart`);
    expect(res.status).toBe(202);
    expect(res.headers.get('location')).toBe(`/v1/orders/${res.body.id}`);
    expect(res.body).toMatchObject({ type: 'node.restart', status: 'accepted', result: { nodeId: nodeIds[1] } });
    expect((await s.sys.waitForOrder(res.body.id, ['fulfilled', 'failed'])).status).toBe('fulfilled');
    expect((await s.sys.http('POST', `/v1/nodes/${nodeIds[1]}/restart`, { key: otherKey })).status).toBe(404);
    expect((await s.sys.http('POST', `/v1/nodes/${randomUUID()}/restart`)).status).toBe(404);
  }, 60_000);

  it('degrades to unknown health and zero traffic without health-monitor and load-balancer', async () => {
    for (const name of ['health-monitor', 'load-balancer'] as const) for (const p of s.sys.processes(name)) await p.stop();

    const node = await nodeOf(nodeIds[0]!);
    expect(node).toMatchObject({ id: nodeIds[0], status: 'running', unavailable: ['health-monitor', 'load-balancer'] });
    expect(node.health).toMatchObject({ status: 'unknown', score: null, reason: 'health-monitor did not answer' });
    expect(node.traffic).toEqual({ activeConnections: 0, totalConnections: 0, failedConnections: 0, rxBytes: 0, txBytes: 0 });

    const compat = await s.api('GET', '/nodes');
    expect(compat.status).toBe(200);
    expect(compat.body.map((n: any) => n.health_status)).toEqual(['unknown', 'unknown']);

    const best = await s.sys.http('GET', `/v1/pools/${poolId}/best-node`);
    expect(best.status).toBe(503);
    expect(best.headers.get('retry-after')).toBe('2');
    expect(best.body.message).toMatch(/^load-balancer is unavailable/);
    const speed = await s.sys.http('POST', `/v1/nodes/${nodeIds[0]}/speedtest`);
    expect(speed.status).toBe(503);
    expect(speed.body.message).toMatch(/^health-monitor is unavailable/);
  }, 60_000);

  it('answers 503 naming exit-node-manager when it is gone', async () => {
    for (const p of s.sys.processes('exit-node-manager')) await p.stop();
    for (const path of ['/v1/pools', `/v1/nodes/${nodeIds[0]}`]) {
      const res = await s.sys.http('GET', path);
      expect(res.status, path).toBe(503);
      expect(res.body.message).toMatch(/^exit-node-manager is unavailable/);
    }
    const compat = await s.api('GET', '/nodes');
    expect(compat.status).toBe(503);
    expect(compat.body.detail).toMatch(/^exit-node-manager is unavailable/);
  }, 60_000);
});

/** One GET through the load balancer's HTTP proxy to the tenant's JP pool, bounded in time. */
function viaLoadBalancer(proxyPort: number, url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: proxyPort,
        method: 'GET',
        path: url,
        agent: false,
        timeout: 5_000,
        headers: { host: new URL(url).host, 'proxy-authorization': `Basic ${Buffer.from('country-jp:x').toString('base64')}` },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer through the load balancer within 5 s')));
    req.on('error', reject);
    req.end();
  });
}
