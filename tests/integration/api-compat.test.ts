import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, basicAuth, eventually, expectCompatNode, expectSpeedTest, startApiSystem, TEST_SERVERS, type ApiSystem, type HttpResult } from '@switchyard/testkit';

// The VPN Exit Controller API v2 surface against the real exit-node-manager, health-monitor
// and load-balancer: every endpoint with the source's shapes, and its bad input.
describe('the /api compatibility surface', () => {
  let s: ApiSystem;
  // Three nodes every test may use, started once for the file: with no server, with the
  // server from the body, and from the query. `starts` keeps the start answers.
  let starts: Record<'plain' | 'body' | 'query', HttpResult>;
  let started: Record<'plain' | 'body' | 'query', string>;

  const node = async (id: string) => (await s.api('GET', `/nodes/${id}`)).body;
  const runningAndHealthy = (id: string) =>
    eventually(
      () => node(id),
      (n) => n?.status === 'running' && n.health_status === 'healthy',
      60_000,
      `node ${id} running and healthy`,
    );

  beforeAll(async () => {
    s = await startApiSystem();
    starts = {
      // As its clients send it: a JSON content type and no body at all.
      plain: await s.api('POST', '/nodes/JP/start', { rawBody: '', headers: { 'content-type': 'application/json' } }),
      body: await s.api('POST', '/nodes/jp/start', { body: { server: 'jp2.vpn.example' } }),
      query: await s.api('POST', '/nodes/jp/start?server=jp1.vpn.example'),
    };
    started = { plain: starts.plain.body.node_id, body: starts.body.body.node_id, query: starts.query.body.node_id };
    for (const id of Object.values(started)) await runningAndHealthy(id);
  }, 240_000);
  afterAll(async () => {
    await s?.close();
  });

  it('starts nodes in a country, with the server from the query, the body, or none', async () => {
    const { plain, body, query } = starts;
    expect(plain.status).toBe(200);
    expect(plain.body).toEqual({ status: 'starting', node_id: expect.stringMatching(/^[0-9a-f-]{36}$/), country: 'jp', server: null });
    expect(body.body).toMatchObject({ status: 'starting', country: 'jp', server: 'jp2.vpn.example' });
    expect(query.body).toMatchObject({ status: 'starting', country: 'jp', server: 'jp1.vpn.example' });

    for (const id of Object.values(started)) {
      const shown = await runningAndHealthy(id);
      expectCompatNode(shown);
      expect(shown).toMatchObject({ id, country: 'jp', tailscale_ip: null });
      expect(shown.started_at).not.toBeNull();
      expect(shown.metrics.vpn_connected).toBe(true);
      expect(shown.metrics.last_health_check).not.toBeNull();
    }
    expect((await node(started.body)).vpn_server).toBe('jp2.vpn.example');
    expect((await node(started.query)).vpn_server).toBe('jp1.vpn.example');
    expect((await node(started.plain)).vpn_server).toBeNull();
  }, 120_000);

  it('lists the nodes in the source shape, with container figures once sampled', async () => {
    const listed = await eventually(
      async () => (await s.api('GET', '/nodes')).body,
      (ns: any[]) => ns.length === 3 && ns.every((n) => n.metrics.memory_mb > 0),
      30_000,
      'three nodes with stats',
    );
    for (const n of listed) expectCompatNode(n);
    expect(listed.map((n: any) => n.id).sort()).toEqual(Object.values(started).sort());
  });

  it('answers logs as one string and the number of lines', async () => {
    const res = await s.api('GET', `/nodes/${started.plain}/logs?lines=5`);
    expect(res.status).toBe(200);
    expect(Object.keys(res.body).sort()).toEqual(['lines', 'logs']);
    expect(typeof res.body.logs).toBe('string');
    // The exit-node image logs one line when it listens, and nothing per request.
    expect(res.body.logs).toContain('exit-node: http proxy on ');
    expect(res.body.lines).toBe(res.body.logs.split('\n').length);
    expect(res.body.lines).toBeLessThanOrEqual(5);
  });

  it('sums the stats', async () => {
    const res = await s.api('GET', '/stats');
    expect(Object.keys(res.body).sort()).toEqual(['active_nodes', 'connected_clients', 'total_nodes', 'total_traffic']);
    expect(res.body).toMatchObject({ total_nodes: 3, active_nodes: 3 });
    for (const v of Object.values(res.body)) expect(Number.isInteger(v)).toBe(true);
  });

  it('lists countries from the server catalog and the tenant pools, and serves the catalog', async () => {
    expect((await s.api('GET', '/countries')).body).toEqual(['de', 'jp']);
    expect((await s.api('GET', '/config/servers')).body).toEqual(TEST_SERVERS);
    expect((await s.api('GET', '/config/servers/JP')).body).toEqual(TEST_SERVERS.jp);
    const none = await s.api('GET', '/config/servers/fr');
    expect(none.status).toBe(404);
    expect(none.body.detail).toMatch(/no servers configured for country "fr"/);
    expect((await s.api('GET', '/config/servers/xx')).status).toBe(400);
  });

  it('names the best node of a country, or null where there is none', async () => {
    const best = await s.api('GET', '/load-balancer/best-node/jp');
    expect(best.status).toBe(200);
    expectCompatNode(best.body);
    expect(Object.values(started)).toContain(best.body.id);
    const none = await s.api('GET', '/load-balancer/best-node/de');
    expect(none.status).toBe(200);
    expect(none.body).toBeNull();
  });

  it('reads and sets the balancing strategy', async () => {
    const before = await s.api('GET', '/load-balancer/strategy');
    expect(before.status).toBe(200);
    expect(['round_robin', 'least_connections', 'weighted_latency', 'random', 'health_score']).toContain(before.body.strategy);
    const set = await s.api('POST', '/load-balancer/strategy', { body: { strategy: 'least_connections' } });
    expect(set.body).toEqual({ strategy: 'least_connections' });
    expect((await s.api('GET', '/load-balancer/strategy')).body).toEqual({ strategy: 'least_connections' });
  });

  it('runs a speed test through a node and keeps its result', async () => {
    const ran = await s.api('POST', `/speed-test/${started.plain}`);
    expect(ran.status, JSON.stringify(ran.body)).toBe(200);
    expectSpeedTest(ran.body, started.plain);
    const all = await s.api('GET', '/speed-test/results');
    expect(all.body).toContainEqual(ran.body);
    for (const r of all.body) expectSpeedTest(r);
    const mine = await s.api('GET', `/speed-test/results/${started.plain}`);
    expect(mine.body).toEqual([ran.body]);
    expect((await s.api('GET', `/speed-test/results/${started.body}`)).body).toEqual([]);
  }, 60_000);

  it('restarts and stops nodes', async () => {
    const firstStart = (await node(started.plain)).started_at;
    expect(firstStart).not.toBeNull();
    const restarted = await s.api('POST', `/nodes/${started.plain}/restart`);
    expect(restarted.body).toEqual({ status: 'restarting', node_id: started.plain });
    await eventually(
      () => node(started.plain),
      (n) => n.status === 'running' && n.started_at !== firstStart,
      30_000,
      'restarted node running again',
    );

    const stopped = await s.api('DELETE', `/nodes/${started.query}/stop`);
    expect(stopped.body).toEqual({ status: 'stopping', node_id: started.query });
    const shown = await eventually(
      () => node(started.query),
      (n) => n.status === 'stopped',
      30_000,
      'stopped node',
    );
    expectCompatNode(shown);
  }, 60_000);

  it('answers its health without credentials', async () => {
    const res = await s.sys.http('GET', '/api/health', { key: null });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'healthy', database: true, nats: true });
  });

  describe('bad input', () => {
    it('refuses an unknown country with the reason', async () => {
      const res = await s.api('POST', '/nodes/zz/start');
      expect(res.status).toBe(400);
      expect(res.body.detail).toBe('params.country_code: unknown country "zz" (expected an ISO 3166-1 alpha-2 code)');
      expect((await s.api('GET', '/load-balancer/best-node/zz')).status).toBe(400);
    });

    it('refuses an unknown strategy naming the allowed ones', async () => {
      const res = await s.api('POST', '/load-balancer/strategy', { body: { strategy: 'fastest' } });
      expect(res.status).toBe(400);
      expect(res.body.detail).toBe('strategy: unknown strategy "fastest"; one of round_robin, least_connections, weighted_latency, random, health_score');
    });

    it('answers 404 for an unknown node on every node endpoint', async () => {
      for (const id of [randomUUID(), 'us-node-1']) {
        const calls: Array<[string, string]> = [
          ['GET', `/nodes/${id}`],
          ['GET', `/nodes/${id}/logs?lines=10`],
          ['DELETE', `/nodes/${id}/stop`],
          ['POST', `/nodes/${id}/restart`],
          ['POST', `/speed-test/${id}`],
          ['GET', `/speed-test/results/${id}`],
        ];
        for (const [method, path] of calls) {
          const res = await s.api(method, path);
          expect(res.status, `${method} ${path}`).toBe(404);
          expect(res.body.detail).toMatch(/not found/);
        }
      }
    });

    it('refuses bad or missing credentials with a Basic challenge', async () => {
      for (const authorization of [basicAuth('controller', 'wrong'), basicAuth('someone', 'compat-password-for-tests'), 'Bearer sy_not_a_key', undefined]) {
        const res = await s.sys.http('GET', '/api/nodes', { key: null, headers: authorization ? { authorization } : {} });
        expect(res.status, String(authorization)).toBe(401);
        expect(res.headers.get('www-authenticate')).toMatch(/^Basic realm="switchyard"/);
      }
    });

    it('names the body when the JSON is malformed', async () => {
      const res = await s.api('POST', '/load-balancer/strategy', { rawBody: '{"strategy": ', headers: { 'content-type': 'application/json' } });
      expect(res.status).toBe(400);
      expect(res.body.issues).toEqual([{ field: 'body', message: expect.any(String) }]);
      expect(res.body.detail).toMatch(/^body: /);
    });

    it("opens with a native key too, scoped to that key's tenant", async () => {
      expect((await s.sys.http('GET', '/api/nodes')).body).toHaveLength(3);
      const tenant = await s.sys.http('POST', '/v1/tenants', { body: { name: 'other' } });
      expect(tenant.status).toBe(201);
      const other = await s.sys.http('GET', '/api/nodes', { key: tenant.body.apiKey });
      expect(other.body).toEqual([]);
      expect((await s.sys.http('GET', `/api/nodes/${started.plain}`, { key: tenant.body.apiKey })).status).toBe(404);
      expect((await s.sys.http('DELETE', `/api/nodes/${started.plain}/stop`, { key: tenant.body.apiKey })).status).toBe(404);
    });
  });

  describe('bad configuration', () => {
    async function exitOf(env: Record<string, string>) {
      const p = s.sys.spawn('api-gateway', { API_PORT: String(await freePort()), ...env });
      const { code } = await p.exited;
      return { code, output: p.output() };
    }

    it('stops with 78 naming the variable', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'sy-api-config-'));
      try {
        const badCatalog = join(dir, 'servers.json');
        await writeFile(badCatalog, JSON.stringify({ xx: ['a.example'], jp: ['not a host'] }));
        const cases: Array<[Record<string, string>, RegExp]> = [
          [{ COMPAT_API_USERNAME: 'controller' }, /COMPAT_API_PASSWORD: set both COMPAT_API_USERNAME and COMPAT_API_PASSWORD, or neither/],
          [{ VPN_SERVERS_FILE: join(dir, 'missing.json') }, /VPN_SERVERS_FILE: ENOENT/],
          [{ VPN_SERVERS_FILE: badCatalog }, /VPN_SERVERS_FILE: "xx" is not an ISO 3166-1 alpha-2 country code; jp\[0\]: expected a hostname, got "not a host"/],
          [{ COMPAT_API_TENANT_ID: randomUUID() }, /COMPAT_API_TENANT_ID: no tenant/],
        ];
        for (const [env, message] of cases) {
          const { code, output } = await exitOf(env);
          expect(code, output).toBe(78);
          expect(output).toMatch(message);
        }
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }, 60_000);
  });

  // Last: the node it adds would change the counts the tests above expect.
  it('takes uk, as the source API writes the United Kingdom, for GB and answers with uk', async () => {
    const start = await s.api('POST', '/nodes/uk/start');
    expect(start.status, JSON.stringify(start.body)).toBe(200);
    expect(start.body).toMatchObject({ status: 'starting', country: 'uk', server: null });
    const id = start.body.node_id as string;
    // The node is GB's: listed by its ISO code, as every node is.
    expect(await runningAndHealthy(id)).toMatchObject({ id, country: 'gb' });
    const best = await s.api('GET', '/load-balancer/best-node/UK');
    expect(best.status).toBe(200);
    expect(best.body).toMatchObject({ id, country: 'uk' });
    expect((await s.api('GET', '/load-balancer/best-node/gb')).body).toMatchObject({ id, country: 'gb' });
    const servers = await s.api('GET', '/config/servers/uk');
    expect(servers.status).toBe(404);
    expect(servers.body.detail).toBe('no servers configured for country "uk"');
  }, 90_000);
});
