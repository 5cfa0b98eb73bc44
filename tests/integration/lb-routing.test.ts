import { execFile } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import {
  eventually,
  natsRequest,
  startLoopbackTarget,
  watchSubjects,
  rawExchange,
  freePort,
  EXIT_NODE_IMAGE,
  startTestSystem,
  type LoopbackTarget,
  type TestSystem,
} from '@switchyard/testkit';

// The load balancer in front of real exit nodes: exit-node-manager runs them as containers on
// the host network (so they reach the test's loopback target) and health-monitor checks them
// through their proxies. Every client below is the real curl binary or a raw socket.

interface Traffic {
  nodeId: string;
  activeConnections: number;
  totalConnections: number;
  failedConnections: number;
}

function curl(args: string[], timeoutMs = 10_000): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--max-time', String(timeoutMs / 1000), ...args], { timeout: timeoutMs + 2000 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, out: stdout, err: stderr });
    });
  });
}

/** Opens a CONNECT tunnel through the proxy and keeps it open; resolves once it is established. */
function holdTunnel(port: number, target: string, auth?: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error('tunnel not established within 5 s'));
    }, 5000);
    const authHeader = auth ? `Proxy-Authorization: Basic ${Buffer.from(auth).toString('base64')}\r\n` : '';
    s.once('connect', () => s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${authHeader}\r\n`));
    s.once('data', (d) => {
      clearTimeout(timer);
      if (d.toString().startsWith('HTTP/1.1 200')) resolve(s);
      else reject(new Error(`tunnel refused: ${d.toString().split('\r\n')[0]}`));
    });
    s.once('error', reject);
  });
}

describe('load balancer in front of a pool of three exit nodes', () => {
  let sys: TestSystem;
  let nc: NatsConnection;
  let redis: Redis;
  let target: LoopbackTarget;
  let tenantId: string;
  let poolId: string;
  let nodeIds: string[];
  let proxyPort: number;
  let jpPort: number;
  let authPort: number;
  let appPort: number;
  const lbEnv = () => ({ LB_PROXY_PORT: String(proxyPort), LB_COUNTRY_PORTS: `JP=${jpPort}`, LB_WORKERS: '1', LB_REBUILD_INTERVAL_MS: '2000', LB_SCORE_REFRESH_MS: '300' });

  async function order(pool: Record<string, unknown>): Promise<{ poolId: string; nodeIds: string[] }> {
    const placed = await sys.http('POST', '/v1/orders', { body: { type: 'pool.create', pool } });
    expect(placed.status, JSON.stringify(placed.body)).toBe(202);
    const done = await sys.waitForOrder(placed.body.id, ['fulfilled', 'failed'], { timeoutMs: 60_000 });
    expect(done.status, JSON.stringify(done)).toBe('fulfilled');
    return done.result;
  }

  async function healthOf(ids: string[]): Promise<Map<string, string>> {
    const reply = await natsRequest<{ nodes: Array<{ nodeId: string; status: string }> }>(nc, 'health.req.status', { nodeIds: ids });
    return new Map(reply.nodes.map((n) => [n.nodeId, n.status]));
  }

  async function waitHealth(ids: string[], status: string, timeoutMs = 20_000): Promise<void> {
    let last = new Map<string, string>();
    const read = async () => [...(last = await healthOf(ids).catch(() => last))];
    await eventually(read, () => ids.every((id) => last.get(id) === status), timeoutMs, `nodes ${status}`, { intervalMs: 100 });
  }

  async function traffic(): Promise<Map<string, Traffic>> {
    const reply = await natsRequest<{ nodes: Traffic[] }>(nc, 'lb.req.traffic', { nodeIds });
    return new Map(reply.nodes.map((n) => [n.nodeId, n]));
  }

  /** Node of each of `n` absolute-form requests, from the Via header the exit node adds. */
  async function servedBy(n: number, proxy = `http://country-jp:x@127.0.0.1:${proxyPort}`): Promise<Record<string, number>> {
    const counts: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const r = await curl(['-x', proxy, '-D', '-', `${target.url}/hello`]);
      expect(r.code, r.err).toBe(0);
      const via = /x-via: 1\.1 (\S+)/i.exec(r.out)?.[1] ?? 'none';
      counts[via] = (counts[via] ?? 0) + 1;
    }
    return counts;
  }

  beforeAll(async () => {
    target = await startLoopbackTarget();
    [proxyPort, jpPort, authPort, appPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    sys = await startTestSystem({ services: ['api-gateway', 'exit-node-manager'] });
    nc = await sys.natsClient();
    redis = new Redis(process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379');
    await sys.start('health-monitor', { HEALTH_PROXY_TARGET: `${target.url}/204` });
    await sys.start('load-balancer', lbEnv());
    tenantId = (await sys.db.query<{ id: string }>("select id from tenants where name = 'admin'"))[0]!.id;
    // Tolerant checks: CI runs two test files at once on two cores, and a node that flaps under
    // that load would make every distribution assertion below meaningless.
    const check = { type: 'proxy', target: `${target.url}/204`, intervalMs: 500, timeoutMs: 450, rise: 1, fall: 6, graceMs: 0 };
    ({ poolId, nodeIds } = await order({ name: 'jp', kind: 'exit', country: 'JP', network: 'host', nodes: { min: 3, max: 3 }, sticky: 'session', healthCheck: check }));
    expect(nodeIds).toHaveLength(3);
    await waitHealth(nodeIds, 'healthy');
  }, 150_000);

  afterAll(async () => {
    redis?.disconnect();
    await sys?.close();
    await target?.close();
  });

  it('curl reaches a loopback target through the pool: absolute-form, CONNECT, SOCKS5, and a country port', async () => {
    const viaUser = `http://country-jp:x@127.0.0.1:${proxyPort}`;
    const absolute = await curl(['-x', viaUser, `${target.url}/hello`]);
    expect(absolute).toMatchObject({ code: 0, out: 'hello' });
    const tunnel = await curl(['-p', '-x', viaUser, `${target.url}/hello`]);
    expect(tunnel).toMatchObject({ code: 0, out: 'hello' });
    const socks = await curl(['--socks5-hostname', `127.0.0.1:${proxyPort}`, '--proxy-user', 'country-jp:x', `${target.url}/hello`]);
    expect(socks).toMatchObject({ code: 0, out: 'hello' });
    const countryPort = await curl(['--socks5-hostname', `127.0.0.1:${jpPort}`, `${target.url}/hello`]);
    expect(countryPort).toMatchObject({ code: 0, out: 'hello' });
    const countryPortHttp = await curl(['-x', `http://127.0.0.1:${jpPort}`, `${target.url}/hello`]);
    expect(countryPortHttp).toMatchObject({ code: 0, out: 'hello' });
    // No country at all: any exit pool may serve it.
    const anyCountry = await curl(['-x', `http://127.0.0.1:${proxyPort}`, `${target.url}/hello`]);
    expect(anyCountry).toMatchObject({ code: 0, out: 'hello' });
  });

  it('round_robin spreads 60 requests 20/20/20', async () => {
    const set = await natsRequest<{ strategy: string }>(nc, 'lb.req.strategy', { tenantId, strategy: 'round_robin' });
    expect(set.strategy).toBe('round_robin');
    const flaps = watchSubjects(nc, ['health.evt.changed', 'lb.evt.connfail']);
    const counts = await servedBy(60);
    const context = `health events meanwhile: ${JSON.stringify(flaps.seen.map((m) => [m.subject, m.data.nodeId, m.data.status ?? m.data.error]))}`;
    expect(Object.keys(counts).sort(), context).toEqual([...nodeIds].sort());
    expect(Object.values(counts), context).toEqual([20, 20, 20]);
  });

  it('least_connections and random (two choices) balance 60 held tunnels; counters reach Redis', async () => {
    for (const strategy of ['least_connections', 'random'] as const) {
      await natsRequest(nc, 'lb.req.strategy', { tenantId, strategy });
      await sleep(1_500); // the earlier requests' counts reach Redis first
      const before = await traffic();
      const held: Socket[] = [];
      try {
        for (let i = 0; i < 60; i++) held.push(await holdTunnel(jpPort, `127.0.0.1:${target.port}`));
        // Counters are flushed to Redis about once a second.
        const activeOf = (t: Map<string, Traffic>) => nodeIds.map((id) => t.get(id)!.activeConnections);
        const during = await eventually(traffic, (t) => activeOf(t).reduce((a, b) => a + b) === 60, 2_500, 'the held tunnels counted', { returnLast: true });
        const active = activeOf(during);
        expect(
          active.reduce((a, b) => a + b),
          strategy,
        ).toBe(60);
        if (strategy === 'least_connections') expect(active, strategy).toEqual([20, 20, 20]);
        else for (const a of active) expect(a, `${strategy}: ${active}`).toBeGreaterThanOrEqual(17);
        for (const id of nodeIds) expect(during.get(id)!.totalConnections - before.get(id)!.totalConnections).toBe(during.get(id)!.activeConnections);
      } finally {
        for (const s of held) s.destroy();
      }
      const after = await eventually(traffic, (t) => nodeIds.every((id) => t.get(id)!.activeConnections === 0), 2_500, 'the tunnels closed', { returnLast: true });
      expect(nodeIds.map((id) => after.get(id)!.activeConnections)).toEqual([0, 0, 0]);
    }
    await natsRequest(nc, 'lb.req.strategy', { tenantId, strategy: 'round_robin' });
  });

  it('weighted_latency and health_score follow the measured latency and score of a slowed node', async () => {
    // Slow one node's proxy down (the exit-node image's fault switch): its proxy checks now
    // take 200 ms more, which lowers its score and raises its latency. 60 ms cost it only ~6
    // points of score, which two checks of another node failing on a loaded host outweigh.
    const slow = nodeIds[0]!;
    const nodes = (await sys.http('GET', `/v1/nodes?poolId=${poolId}`)).body.nodes as Array<{ id: string; ports: Array<{ name: string; hostPort: number }> }>;
    const control = nodes.find((n) => n.id === slow)!.ports.find((p) => p.name === 'control')!.hostPort;
    const setDelay = (ms: number) => fetch(`http://127.0.0.1:${control}/v1/faults/delay`, { method: 'PUT', body: JSON.stringify({ ms }) });
    expect((await setDelay(200)).status).toBe(200);
    try {
      type Health = { nodeId: string; status: string; score: number; latencyMs: number | null };
      const measured = (health: Health[]) => {
        const s = health.find((h) => h.nodeId === slow)!;
        const others = health.filter((h) => h.nodeId !== slow);
        return s.latencyMs! >= 50 && others.every((o) => o.score > s.score && o.latencyMs! < 30);
      };
      const read = async () => (await natsRequest<{ nodes: Health[] }>(nc, 'health.req.status', { nodeIds })).nodes;
      const health = await eventually(read, measured, 20_000, 'the slowed node measured', { returnLast: true });
      const slowHealth = health.find((h) => h.nodeId === slow)!;
      expect(slowHealth.status).toBe('healthy');
      expect(slowHealth.latencyMs).toBeGreaterThanOrEqual(50);
      await sleep(1_000); // the load balancer re-reads scores every 300 ms here

      await natsRequest(nc, 'lb.req.strategy', { tenantId, strategy: 'health_score' });
      // Judged over a sample the scores kept their order through: on a loaded host another
      // node's check can fail and drop its score below the slowed one's for a moment, and then
      // the slowed node is rightly the best. Three tries at most.
      let byScore: Record<string, number> = {};
      for (let attempt = 1; attempt <= 3; attempt++) {
        await eventually(read, measured, 20_000, 'the slowed node scored lowest');
        await sleep(1_000);
        byScore = await servedBy(30);
        if (measured(await read())) break;
      }
      expect(byScore[slow] ?? 0, JSON.stringify(byScore)).toBe(0);
      expect(Object.values(byScore).reduce((a, b) => a + b)).toBe(30);

      // Weights 1/latency: about 200 ms against a few, so the slow node's share is small.
      await natsRequest(nc, 'lb.req.strategy', { tenantId, strategy: 'weighted_latency' });
      const byLatency = await servedBy(60);
      const weights = new Map(health.map((h) => [h.nodeId, 1 / Math.max(0.1, h.latencyMs!)]));
      const expectedSlowShare = weights.get(slow)! / [...weights.values()].reduce((a, b) => a + b);
      expect(expectedSlowShare).toBeLessThan(0.1);
      expect(byLatency[slow] ?? 0, JSON.stringify(byLatency)).toBeLessThanOrEqual(9);
      // How the fast nodes split the rest follows their own live sub-millisecond latencies, which
      // a loaded host moves (CI saw 49 and 10): each takes a share, the split is not the claim.
      for (const id of nodeIds.filter((n) => n !== slow)) expect(byLatency[id] ?? 0, JSON.stringify(byLatency)).toBeGreaterThanOrEqual(1);

      // Still a healthy member: round robin gives it its third.
      await natsRequest(nc, 'lb.req.strategy', { tenantId, strategy: 'round_robin' });
      expect((await servedBy(30))[slow]).toBe(10);
    } finally {
      await setDelay(0);
      await natsRequest(nc, 'lb.req.strategy', { tenantId, strategy: 'round_robin' });
    }
  });

  it('a sticky session stays on one node while requests without one spread', async () => {
    const sticky = await servedBy(15, `http://country-jp-session-abc123:x@127.0.0.1:${proxyPort}`);
    expect(Object.values(sticky)).toEqual([15]);
    const other = await servedBy(15, `http://country-jp-session-zz9:x@127.0.0.1:${proxyPort}`);
    expect(Object.values(other)).toEqual([15]);
    expect(Object.keys(await servedBy(9))).toHaveLength(3);
  });

  it('lb.req.best names a node of the pool without taking it', async () => {
    await natsRequest(nc, 'lb.req.strategy', { tenantId, strategy: 'round_robin' });
    const a = await natsRequest<{ node: { nodeId: string; poolId: string; strategy: string } | null }>(nc, 'lb.req.best', { tenantId, country: 'JP' });
    const b = await natsRequest<{ node: { nodeId: string } | null }>(nc, 'lb.req.best', { tenantId, country: 'jp' });
    expect(a.node).toMatchObject({ poolId, strategy: 'round_robin' });
    expect(nodeIds).toContain(a.node!.nodeId);
    expect(b.node!.nodeId).toBe(a.node!.nodeId);
    expect((await natsRequest<{ node: unknown }>(nc, 'lb.req.best', { tenantId, country: 'US' })).node).toBeNull();
  });

  it('malformed requests, bad credentials and a pool without a healthy node get the protocol error at once', async () => {
    // A pool whose every node fails its check: the load balancer must not use it.
    const sick = await order({
      name: 'de',
      kind: 'exit',
      country: 'DE',
      network: 'host',
      nodes: { min: 1, max: 1 },
      healthCheck: { type: 'proxy', target: 'http://127.0.0.1:1/', intervalMs: 200, timeoutMs: 200, rise: 1, fall: 1, graceMs: 0 },
    });
    await waitHealth(sick.nodeIds, 'unhealthy');
    await sleep(300);
    const rejectedBefore = await redis.hgetall('lb:rejected');

    const greeting = await rawExchange(proxyPort, Buffer.from([5, 0]), 3000);
    expect([...greeting.bytes]).toEqual([5, 0xff]);
    expect(greeting.closed).toBe(true);

    const badCommand = await rawExchange(proxyPort, Buffer.from([5, 1, 0, 5, 2, 0, 1, 127, 0, 0, 1, 0, 80]), 3000);
    expect([...badCommand.bytes]).toEqual([5, 0, 5, 7, 0, 1, 0, 0, 0, 0, 0, 0]);
    expect(badCommand.closed).toBe(true);

    const garbage = await rawExchange(proxyPort, 'HELLO\r\n\r\n', 3000);
    expect(garbage.bytes.toString()).toMatch(/^HTTP\/1\.1 400 /);

    const noHealthyHttp = await curl(['-p', '-x', `http://country-de:x@127.0.0.1:${proxyPort}`, `${target.url}/hello`]);
    expect(noHealthyHttp.code).not.toBe(0);
    expect(noHealthyHttp.err).toMatch(/503/);
    const noHealthySocks = await curl(['--socks5-hostname', `127.0.0.1:${proxyPort}`, '--proxy-user', 'country-de:x', `${target.url}/hello`]);
    expect(noHealthySocks.code).toBe(97); // curl: the SOCKS5 proxy refused (reply 0x01)
    expect(noHealthySocks.err).toMatch(/SOCKS5/);

    // Credentials: a second load balancer with users; one is bound to another tenant.
    const otherTenant = '00000000-0000-4000-8000-000000000001';
    const authed = await sys.start('load-balancer', {
      LB_PROXY_PORT: String(authPort),
      LB_WORKERS: '1',
      LB_PROXY_USERS: `alice:secret@${tenantId},mallory:pw@${otherTenant}`,
    });
    try {
      const missing = await curl(['-x', `http://127.0.0.1:${authPort}`, `${target.url}/hello`, '-o', '/dev/null', '-w', '%{http_code}']);
      expect(missing.out).toBe('407');
      const wrong = await curl(['-x', `http://alice-country-jp:nope@127.0.0.1:${authPort}`, `${target.url}/hello`, '-o', '/dev/null', '-w', '%{http_code}']);
      expect(wrong.out).toBe('407');
      const socksWrong = await curl(['--socks5-hostname', `127.0.0.1:${authPort}`, '--proxy-user', 'alice-country-jp:nope', `${target.url}/hello`]);
      expect(socksWrong.code).toBe(97);
      expect(socksWrong.err).toMatch(/rejected/i);
      const socksNone = await rawExchange(authPort, Buffer.from([5, 1, 0]), 3000);
      expect([...socksNone.bytes]).toEqual([5, 0xff]);
      const good = await curl(['--socks5-hostname', `127.0.0.1:${authPort}`, '--proxy-user', 'alice-country-jp:secret', `${target.url}/hello`]);
      expect(good).toMatchObject({ code: 0, out: 'hello' });
      const goodHttp = await curl(['-x', `http://alice-country-jp:secret@127.0.0.1:${authPort}`, `${target.url}/hello`]);
      expect(goodHttp).toMatchObject({ code: 0, out: 'hello' });
      // Valid credentials of a tenant without JP pools: nothing of this tenant is reachable.
      const scoped = await curl(['-x', `http://mallory-country-jp:pw@127.0.0.1:${authPort}`, `${target.url}/hello`, '-o', '/dev/null', '-w', '%{http_code}']);
      expect(scoped.out).toBe('503');
    } finally {
      expect((await authed.stop('SIGTERM')).code).toBe(0);
    }

    // Every refusal above was counted (the second process flushed its counts as it stopped).
    await sleep(1_500);
    const after = await redis.hgetall('lb:rejected');
    const grew = (k: string) => Number(after[k] ?? 0) - Number(rejectedBefore[k] ?? 0);
    expect(grew('malformed')).toBeGreaterThanOrEqual(3);
    expect(grew('auth')).toBeGreaterThanOrEqual(4);
    expect(grew('unavailable')).toBeGreaterThanOrEqual(3);
  });

  it('an app pool gets a TCP listener on its public port that forwards to its nodes', async () => {
    const app = await order({
      name: 'web',
      kind: 'app',
      image: EXIT_NODE_IMAGE,
      network: 'host',
      nodes: { min: 2, max: 2 },
      publicPort: appPort,
      // An app pool keeps its own env: the exit-node image as an app reaches 127.0.0.1 through it.
      env: { FIREWALL_OUTBOUND_SUBNETS: '127.0.0.1/32' },
      ports: [
        { name: 'web', containerPort: 8888, env: 'HTTPPROXY_PORT' },
        { name: 'control', containerPort: 8000, env: 'CONTROL_PORT' },
      ],
      strategy: 'round_robin',
    });
    // Healthy nodes take the traffic before unknown ones: spread only once both passed a check.
    await waitHealth(app.nodeIds, 'healthy');
    // The exit-node image's proxy is the app here: an absolute-form request through the
    // public port is served by one of the app's nodes.
    const r = await eventually(
      () => curl(['-x', `http://127.0.0.1:${appPort}`, '-D', '-', `${target.url}/hello`]),
      (res) => res.code === 0,
      15_000,
      'the app port answering',
      { returnLast: true },
    );
    expect(r.code, r.err).toBe(0);
    for (let i = 0; i < 6; i++) {
      const res = await curl(['-x', `http://127.0.0.1:${appPort}`, `${target.url}/hello`]);
      expect(res, res.err).toMatchObject({ code: 0, out: 'hello' });
    }
    // App nodes all carry the host's name in Via, so the counters tell which node served.
    const totalsOf = async () => (await natsRequest<{ nodes: Traffic[] }>(nc, 'lb.req.traffic', { nodeIds: app.nodeIds })).nodes.map((n) => n.totalConnections);
    const totals = await eventually(totalsOf, (t) => t.reduce((a, b) => a + b) >= 7 && t.every((n) => n >= 3), 2_500, 'the app connections counted', { returnLast: true });
    expect(totals.reduce((a, b) => a + b)).toBeGreaterThanOrEqual(7);
    for (const t of totals) expect(t).toBeGreaterThanOrEqual(3);
  });

  it('a restarted load balancer rebuilds its table and keeps routing to every node', async () => {
    const lb = sys.processes('load-balancer')[0]!;
    const t0 = Date.now();
    expect((await lb.stop('SIGTERM')).code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(10_000);
    await sys.start('load-balancer', { ...lbEnv(), LB_WORKERS: '2' });
    const counts = await servedBy(12);
    expect(Object.keys(counts).sort()).toEqual([...nodeIds].sort());
  });
});
