import { describe, expect, it } from 'vitest';
import type { NodeHealth } from '@switchyard/contracts';
import { compatStatus, toCompatNode } from '../src/compat/shapes.js';
import { basicHeader, nodeView, poolId, tenantId, testApp } from './fakes.js';

const node = nodeView({ stats: { cpuPercent: 1.5, memoryMb: 12, memoryPercent: 0.5, rxBytes: 1000, txBytes: 500, rxPackets: 10, txPackets: 5, at: '2026-11-24T10:00:05.000Z' } });
const health: NodeHealth = { tenantId, poolId, nodeId: node.nodeId, status: 'healthy', score: 97, latencyMs: 3, lastCheckAt: '2026-11-24T10:00:06.000Z', reason: 'ok' };
const enm = {
  'node.req.list': (p: { nodeId?: string }) => ({
    nodes: [
      node,
      nodeView({ nodeId: 'a1b2c3d4-0000-4000-8000-000000000002', kind: 'app', country: null }),
      nodeView({ nodeId: 'a1b2c3d4-0000-4000-8000-000000000003', status: 'removed' }),
    ].filter((n) => !p.nodeId || n.nodeId === p.nodeId),
  }),
  'pool.req.snapshot': () => ({
    pools: [{ tenantId, poolId, name: 'berlin', spec: { name: 'berlin', kind: 'exit' as const, country: 'DE', nodes: { min: 1, max: 1 } } }],
    nodes: [node],
  }),
};
const auth = { authorization: basicHeader() };

describe('node shape', () => {
  it('maps every node status onto the five the source API knows', () => {
    expect(['creating', 'starting', 'running', 'stopping', 'stopped', 'sleeping', 'error', 'removed'].map((s) => compatStatus(s as never))).toEqual([
      'starting',
      'starting',
      'running',
      'stopping',
      'stopped',
      'stopped',
      'error',
      'stopped',
    ]);
  });

  it('shows a node without health or counters as unknown with zeros', () => {
    expect(toCompatNode(nodeView())).toEqual({
      id: node.nodeId,
      country: 'jp',
      status: 'running',
      vpn_server: null,
      tailscale_hostname: null,
      tailscale_ip: null,
      started_at: '2026-11-24T10:00:00.000Z',
      health_status: 'unknown',
      metrics: { cpu_percent: 0, memory_percent: 0, memory_mb: 0, network_rx: 0, network_tx: 0, connected_clients: 0, vpn_connected: false, last_health_check: null },
    });
  });
});

describe('/api with the health monitor and load balancer', () => {
  const { app } = testApp({
    ...enm,
    'health.req.status': () => ({ nodes: [health] }),
    'lb.req.traffic': () => ({ nodes: [{ nodeId: node.nodeId, activeConnections: 4, totalConnections: 9, failedConnections: 1, rxBytes: 7, txBytes: 8 }] }),
    'lb.req.best': () => ({ node: { nodeId: node.nodeId, poolId, strategy: 'round_robin' } }),
    'lb.req.strategy': (p) => ({ strategy: p.strategy ?? 'health_score' }),
    // The manager has logs of app and removed nodes too; /api shows exit nodes only.
    'node.req.logs': (p) => (p.nodeId.startsWith('a1b2c3d4-') ? { logs: ['one', 'two'], lines: 2 } : { logs: null, lines: 0 }),
  });

  it('lists exit nodes only, with health, metrics and connected clients', async () => {
    const res = await app.inject({ method: 'GET', url: '/api/nodes', headers: auth });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual([
      {
        id: node.nodeId,
        country: 'jp',
        status: 'running',
        vpn_server: null,
        tailscale_hostname: null,
        tailscale_ip: null,
        started_at: node.startedAt,
        health_status: 'healthy',
        metrics: {
          cpu_percent: 1.5,
          memory_percent: 0.5,
          memory_mb: 12,
          network_rx: 1000,
          network_tx: 500,
          connected_clients: 4,
          vpn_connected: true,
          last_health_check: health.lastCheckAt,
        },
      },
    ]);
  });

  it('sums stats over the nodes', async () => {
    const res = await app.inject({ method: 'GET', url: '/api/stats', headers: auth });
    expect(res.json()).toEqual({ total_nodes: 1, active_nodes: 1, total_traffic: 1500, connected_clients: 4 });
  });

  it('answers the best node of a country as a node, asking with the upper-case code', async () => {
    const res = await app.inject({ method: 'GET', url: '/api/load-balancer/best-node/JP', headers: auth });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ id: node.nodeId, country: 'jp' });
  });

  it('joins log lines into one string', async () => {
    const res = await app.inject({ method: 'GET', url: `/api/nodes/${node.nodeId}/logs?lines=2`, headers: auth });
    expect(res.json()).toEqual({ logs: 'one\ntwo', lines: 2 });
  });

  it('sets a known strategy and names the allowed ones for an unknown one', async () => {
    const ok = await app.inject({ method: 'POST', url: '/api/load-balancer/strategy', headers: auth, payload: { strategy: 'least_connections' } });
    expect(ok.json()).toEqual({ strategy: 'least_connections' });
    const bad = await app.inject({ method: 'POST', url: '/api/load-balancer/strategy', headers: auth, payload: { strategy: 'fastest' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().detail).toBe('strategy: unknown strategy "fastest"; one of round_robin, least_connections, weighted_latency, random, health_score');
  });

  it('lists the catalog countries and the tenant pool countries, lower-case', async () => {
    const res = await app.inject({ method: 'GET', url: '/api/countries', headers: auth });
    expect(res.json()).toEqual(['de', 'jp', 'us']);
  });

  it('serves the server catalog; a known country without servers is a 404, an unknown code a 400', async () => {
    expect((await app.inject({ method: 'GET', url: '/api/config/servers', headers: auth })).json()).toEqual({
      jp: ['jp1.vpn.example'],
      us: ['us1.vpn.example', 'us2.vpn.example'],
    });
    expect((await app.inject({ method: 'GET', url: '/api/config/servers/US', headers: auth })).json()).toEqual(['us1.vpn.example', 'us2.vpn.example']);
    expect((await app.inject({ method: 'GET', url: '/api/config/servers/fr', headers: auth })).statusCode).toBe(404);
    const unknown = await app.inject({ method: 'GET', url: '/api/config/servers/xx', headers: auth });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().detail).toMatch(/unknown country "xx"/);
  });
});

describe('/api without the health monitor and load balancer', () => {
  const { app } = testApp(enm);

  it('still lists nodes, as unknown health and zero clients', async () => {
    const res = await app.inject({ method: 'GET', url: `/api/nodes/${node.nodeId}`, headers: auth });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ health_status: 'unknown', metrics: { connected_clients: 0, vpn_connected: false, last_health_check: null } });
  });

  it('answers 503 naming the load balancer for the calls that need it', async () => {
    const res = await app.inject({ method: 'GET', url: '/api/load-balancer/strategy', headers: auth });
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('2');
    expect(res.json().detail).toMatch(/load-balancer is unavailable/);
  });
});

describe('/api bad input', () => {
  const { app } = testApp(enm);

  it('asks for credentials with a Basic challenge', async () => {
    for (const headers of [
      {},
      { authorization: basicHeader('admin', 'wrong') },
      { authorization: basicHeader('root', 'correct horse battery') },
      { authorization: 'Bearer nope' },
    ]) {
      const res = await app.inject({ method: 'GET', url: '/api/nodes', headers });
      expect(res.statusCode).toBe(401);
      expect(res.headers['www-authenticate']).toMatch(/^Basic realm=/);
      expect(res.json().detail).toBeTypeOf('string');
    }
  });

  it('keeps /api/health open', async () => {
    const res = await app.inject({ method: 'GET', url: '/api/health' });
    expect(res.json()).toMatchObject({ database: expect.any(Boolean), nats: true });
  });

  it('refuses an unknown country before placing anything', async () => {
    const res = await app.inject({ method: 'POST', url: '/api/nodes/zz/start', headers: auth });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error: 'bad_request', detail: 'params.country_code: unknown country "zz" (expected an ISO 3166-1 alpha-2 code)' });
  });

  it('names the body for malformed JSON and a bad server name', async () => {
    const broken = await app.inject({ method: 'POST', url: '/api/nodes/jp/start', headers: { ...auth, 'content-type': 'application/json' }, payload: '{"server":' });
    expect(broken.statusCode).toBe(400);
    expect(broken.json().issues).toEqual([{ field: 'body', message: expect.any(String) }]);
    const badServer = await app.inject({ method: 'POST', url: '/api/nodes/jp/start', headers: auth, payload: { server: 'not a host!' } });
    expect(badServer.statusCode).toBe(400);
    expect(badServer.json().issues[0].field).toBe('server');
  });

  it("answers 404 for a node that is not the tenant's, whatever its id looks like", async () => {
    for (const id of ['a1b2c3d4-0000-4000-8000-00000000dead', 'node-us-1', 'a1b2c3d4-0000-4000-8000-000000000002']) {
      const res = await app.inject({ method: 'GET', url: `/api/nodes/${id}`, headers: auth });
      expect(res.statusCode, id).toBe(404);
      expect(res.json().detail).toBe(`node ${id} not found`);
    }
    for (const id of ['node-us-1', 'a1b2c3d4-0000-4000-8000-000000000002', 'a1b2c3d4-0000-4000-8000-000000000003']) {
      const res = await app.inject({ method: 'GET', url: `/api/nodes/${id}/logs`, headers: auth });
      expect(res.statusCode, id).toBe(404);
      expect(res.json().detail).toBe(`node ${id} not found`);
    }
    expect((await app.inject({ method: 'DELETE', url: '/api/nodes/node-us-1/stop', headers: auth })).statusCode).toBe(404);
    expect((await app.inject({ method: 'POST', url: '/api/speed-test/node-us-1', headers: auth })).statusCode).toBe(404);
  });
});

describe('OpenAPI', () => {
  const { app } = testApp(enm);

  it('documents the /api and /v1 routes with a response schema per status', async () => {
    const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json();
    expect(Object.keys(doc.paths['/api/nodes/{node_id}'].get.responses).sort()).toEqual(['200', '400', '401', '404', '503']);
    expect(doc.paths['/v1/nodes/{id}'].get.responses['200']).toBeDefined();
    expect(doc.components.securitySchemes.basic).toMatchObject({ type: 'http', scheme: 'basic' });
    const ui = await app.inject({ method: 'GET', url: '/docs/' });
    expect(ui.statusCode).toBe(200);
    expect(ui.headers['content-type']).toMatch(/text\/html/);
  });
});
