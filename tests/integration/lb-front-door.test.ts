import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import {
  docker,
  eventually,
  EXIT_NODE_IMAGE,
  freePort,
  natsRequest,
  rawExchange,
  startLoopbackTarget,
  startReady,
  startTestSystem,
  waitForPort,
  watchSubjects,
  type LoopbackTarget,
  type ServiceProcess,
  type TestSystem,
} from '@switchyard/testkit';

// The front door of exit pools, attacked the way a client of a tenant would: the real load
// balancer in front of a real exit-node container on the host network. The test system's
// exit nodes may reach 127.0.0.1 (EXIT_NODE_OUTBOUND_SUBNETS, as tests need); the load
// balancer under test runs with the production destination policy (no LB_ALLOWED_NETWORKS).
// One node: sharing the host's loopback, a node could reach another node's control port
// through that test-only opening (in production a gluetun node's loopback is its own).

const b = (...bytes: number[]) => Buffer.from(bytes);
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

/** Greeting offering username/password, the credentials and a CONNECT request, in one write. */
function socks5(user: string, password: string, atyp: number, address: Buffer, port: number): Buffer {
  const u = Buffer.from(user);
  const p = Buffer.from(password);
  const portBytes = b(port >> 8, port & 0xff);
  return Buffer.concat([b(5, 1, 2), b(1, u.length), u, b(p.length), p, b(5, 1, 0, atyp), address, portBytes]);
}
const socksDomain = (user: string, password: string, name: string, port: number) =>
  socks5(user, password, 3, Buffer.concat([b(Buffer.byteLength(name, 'latin1')), Buffer.from(name, 'latin1')]), port);

/** The SOCKS5 reply code after the method choice and the credentials' answer. */
const socksCode = (bytes: Buffer) => (bytes.length >= 6 ? bytes[5] : undefined);

describe('the exit pools front door', () => {
  let sys: TestSystem;
  let nc: NatsConnection;
  let redis: Redis;
  let target: LoopbackTarget;
  let tenantId: string;
  let nodeIds: string[];
  let controlPorts: number[];
  let proxyPort: number;
  let closedLb: ServiceProcess | undefined;
  let closedPort: number;
  const USER = 'alice';
  const PASS = 'secret';
  const auth = basic(`${USER}-country-jp`, PASS);

  const rejected = async () => (await redis.hgetall('lb:rejected')) as Record<string, string>;
  const grew = (before: Record<string, string>, after: Record<string, string>, k: string) => Number(after[k] ?? 0) - Number(before[k] ?? 0);
  /** Counts reach Redis about once a second (LB_FLUSH_INTERVAL_MS). */
  const rejectedGrowth = async (before: Record<string, string>, k: string, atLeast: number) => {
    const after = await eventually(rejected, (a) => grew(before, a, k) >= atLeast, 5_000, `lb:rejected ${k} +${atLeast}`, { returnLast: true });
    return grew(before, after, k);
  };
  const connectRequest = (authority: string, headers = `Proxy-Authorization: ${auth}\r\n`) => `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${headers}\r\n`;
  const statusLine = (bytes: Buffer) => bytes.toString('latin1').split('\r\n')[0];

  beforeAll(async () => {
    target = await startLoopbackTarget();
    sys = await startTestSystem({ services: ['api-gateway', 'exit-node-manager'] });
    nc = await sys.natsClient();
    redis = new Redis(process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379');
    await sys.start('health-monitor', { HEALTH_PROXY_TARGET: `${target.url}/204` });
    tenantId = (await sys.db.query<{ id: string }>("select id from tenants where name = 'admin'"))[0]!.id;
    // A free port can be taken between its choice and the listen (a host-network node of another
    // test picks its ports from the same range): chosen just before, and chosen again if so.
    for (let attempt = 1; ; attempt++) {
      proxyPort = await freePort();
      try {
        await sys.start('load-balancer', {
          LB_PROXY_PORT: String(proxyPort),
          LB_WORKERS: '1',
          LB_PROXY_USERS: `${USER}:${PASS}@${tenantId}`,
          LB_OPEN_PROXY: 'false',
          LB_ALLOWED_NETWORKS: '',
          LB_MAX_CONNECTIONS_PER_CLIENT: '8',
          LB_REBUILD_INTERVAL_MS: '2000',
        });
        break;
      } catch (err) {
        if (attempt >= 3 || !/EADDRINUSE/.test(String(err))) throw err;
      }
    }
    const check = { type: 'proxy', target: `${target.url}/204`, intervalMs: 500, timeoutMs: 450, rise: 1, fall: 3, graceMs: 0 };
    const placed = await sys.http('POST', '/v1/orders', {
      body: { type: 'pool.create', pool: { name: 'jp', kind: 'exit', country: 'JP', network: 'host', nodes: { min: 1, max: 1 }, healthCheck: check } },
    });
    expect(placed.status, JSON.stringify(placed.body)).toBe(202);
    const done = await sys.waitForOrder(placed.body.id, ['fulfilled', 'failed'], { timeoutMs: 60_000 });
    expect(done.status, JSON.stringify(done)).toBe('fulfilled');
    nodeIds = done.result.nodeIds;
    const nodes = (await sys.http('GET', `/v1/nodes?poolId=${done.result.poolId}`)).body.nodes as Array<{ id: string; ports: Array<{ name: string; hostPort: number }> }>;
    controlPorts = nodeIds.map((id) => nodes.find((n) => n.id === id)!.ports.find((p) => p.name === 'control')!.hostPort);
    await eventually(
      async () => (await natsRequest<{ nodes: Array<{ status: string }> }>(nc, 'health.req.status', { nodeIds })).nodes,
      (ns) => ns.length === 1 && ns[0]!.status === 'healthy',
      30_000,
      'the node healthy',
      { intervalMs: 200 },
    );
    // Routed: a name the load balancer lets through and the node may reach (127.0.0.1 here).
    await eventually(
      () => rawExchange(proxyPort, connectRequest(`localhost:${target.port}`), 500),
      (r) => statusLine(r.bytes) === 'HTTP/1.1 200 Connection Established',
      10_000,
      'a tunnel through the pool',
      { intervalMs: 200 },
    );
  }, 150_000);

  afterAll(async () => {
    await closedLb?.stop('SIGTERM');
    redis?.disconnect();
    await sys?.close();
    await target?.close();
  });

  it('without proxy users the load balancer refuses every client unless LB_OPEN_PROXY=true, which it warns about', async () => {
    closedPort = await freePort();
    // The variables a deployment would set, nothing else: the default is closed.
    closedLb = await startReady('load-balancer', {
      NATS_URL: sys.nats.url,
      ...sys.identityEnv('load-balancer'),
      REDIS_URL: process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379',
      LB_PROXY_PORT: String(closedPort),
      LB_WORKERS: '1',
      SHUTDOWN_TIMEOUT_MS: '5000',
    });
    expect(statusLine((await rawExchange(closedPort, connectRequest('example.com:443', ''), 3000)).bytes)).toMatch(/^HTTP\/1\.1 407 /);
    const withRouting = connectRequest('example.com:443', `Proxy-Authorization: ${basic('country-jp', 'x')}\r\n`);
    expect(statusLine((await rawExchange(closedPort, withRouting, 3000)).bytes)).toMatch(/^HTTP\/1\.1 407 /);
    const absolute = `GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n`;
    expect(statusLine((await rawExchange(closedPort, absolute, 3000)).bytes)).toMatch(/^HTTP\/1\.1 407 /);
    // SOCKS5: no acceptable method without credentials; credentials fail (RFC 1929 status 1).
    expect([...(await rawExchange(closedPort, b(5, 1, 0), 3000)).bytes]).toEqual([5, 0xff]);
    expect([...(await rawExchange(closedPort, socksDomain('country-jp', 'x', 'example.com', 443), 3000)).bytes]).toEqual([5, 2, 1, 1]);
    expect(closedLb.output()).toContain('no proxy users configured: exit pools are refused');

    const openPort = await freePort();
    const open = await sys.start('load-balancer', { LB_PROXY_PORT: String(openPort), LB_WORKERS: '1', LB_OPEN_PROXY: 'true' });
    try {
      const warning = await open.waitForLog(/LB_OPEN_PROXY=true/, 5_000);
      expect(JSON.parse(warning).level).toBe(40);
      const served = await eventually(
        () => rawExchange(openPort, connectRequest(`localhost:${target.port}`, ''), 500),
        (r) => statusLine(r.bytes) === 'HTTP/1.1 200 Connection Established',
        10_000,
        'the open proxy serving',
        { returnLast: true, intervalMs: 200 },
      );
      expect(statusLine(served.bytes)).toBe('HTTP/1.1 200 Connection Established');
    } finally {
      await open.stop('SIGTERM');
    }
  });

  it('refuses IP literals of loopback, private, link-local and metadata addresses with 403 / SOCKS5 0x02, and counts them', async () => {
    const before = await rejected();
    for (const authority of [`127.0.0.1:${target.port}`, '10.0.0.1:80', '169.254.169.254:80', '172.17.0.1:2375', '[::1]:80', `[::ffff:127.0.0.1]:${target.port}`, '0.0.0.0:80']) {
      const r = await rawExchange(proxyPort, connectRequest(authority), 3000);
      expect(statusLine(r.bytes), authority).toBe('HTTP/1.1 403 Forbidden');
    }
    const metadata = `GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\nProxy-Authorization: ${auth}\r\n\r\n`;
    expect(statusLine((await rawExchange(proxyPort, metadata, 3000)).bytes)).toBe('HTTP/1.1 403 Forbidden');
    for (const address of [b(127, 0, 0, 1), b(10, 0, 0, 1), b(169, 254, 169, 254)]) {
      const r = await rawExchange(proxyPort, socks5(`${USER}-country-jp`, PASS, 1, address, 80), 3000);
      expect(socksCode(r.bytes), [...address].join('.')).toBe(0x02);
    }
    // Numeric names a resolver would read as 127.0.0.1 are not host names at all.
    expect(statusLine((await rawExchange(proxyPort, connectRequest(`127.1:${target.port}`), 3000)).bytes)).toMatch(/^HTTP\/1\.1 400 /);
    expect(await rejectedGrowth(before, 'denied', 11)).toBeGreaterThanOrEqual(11);
  });

  it("`localhost` is refused by the exit node once it resolved the name: no client reaches a node's control port", async () => {
    const before = await rejected();
    for (const port of controlPorts) {
      const r = await rawExchange(proxyPort, connectRequest(`localhost:${port}`), 3000);
      expect(statusLine(r.bytes)).toBe('HTTP/1.1 403 Forbidden');
      expect(r.bytes.toString()).toContain('node answered CONNECT with 403');
      const s = await rawExchange(proxyPort, socksDomain(`${USER}-country-jp`, PASS, 'localhost', port), 3000);
      expect(socksCode(s.bytes)).toBe(0x02);
    }
    const absolute = `GET http://localhost:${controlPorts[0]}/v1/openvpn/status HTTP/1.1\r\nHost: localhost\r\nProxy-Authorization: ${auth}\r\n\r\n`;
    expect(statusLine((await rawExchange(proxyPort, absolute, 3000)).bytes)).toBe('HTTP/1.1 403 Forbidden');
    // The node's own refusals count as denied too (the absolute-form one is the node's answer, passed on).
    expect(await rejectedGrowth(before, 'denied', 2 * controlPorts.length)).toBeGreaterThanOrEqual(2 * controlPorts.length);
  });

  it('the exit-node image, without the operator opening any network, refuses loopback and private destinations after resolving', async () => {
    const [nodeProxy, nodeControl] = [await freePort(), await freePort()];
    const container = await docker.createContainer({
      Image: EXIT_NODE_IMAGE,
      Env: [`HTTPPROXY_PORT=${nodeProxy}`, `CONTROL_PORT=${nodeControl}`, 'BIND_ADDRESS=127.0.0.1'],
      Labels: { 'io.switchyard.test': 'lb-front-door' },
      HostConfig: { NetworkMode: 'host', Init: true },
    });
    try {
      await container.start();
      await waitForPort(nodeProxy, 10_000);
      for (const authority of [`localhost:${target.port}`, `127.0.0.1:${target.port}`, '10.0.0.1:80', '169.254.169.254:80', `[::1]:${target.port}`]) {
        const r = await rawExchange(nodeProxy, `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`, 3000);
        expect(statusLine(r.bytes), authority).toBe('HTTP/1.1 403 Forbidden');
      }
    } finally {
      await container.remove({ force: true });
    }
  });

  it('a tenant cannot open networks to its own nodes: FIREWALL_OUTBOUND_SUBNETS in its pool env is replaced by the operator value', async () => {
    const created = await sys.http('POST', '/v1/tenants', { body: { name: 'acme' } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const placed = await sys.http('POST', '/v1/orders', {
      key: created.body.apiKey,
      body: { type: 'pool.create', pool: { name: 'de', kind: 'exit', country: 'DE', nodes: { min: 1, max: 1 }, env: { FIREWALL_OUTBOUND_SUBNETS: '0.0.0.0/0,::/0' } } },
    });
    expect(placed.status, JSON.stringify(placed.body)).toBe(202);
    const done = await sys.waitForOrder(placed.body.id, ['fulfilled', 'failed'], { key: created.body.apiKey, timeoutMs: 60_000 });
    expect(done.status, JSON.stringify(done)).toBe('fulfilled');
    const [c] = await docker.listContainers({ all: true, filters: { label: [`io.switchyard.node=${done.result.nodeIds[0]}`] } });
    const env = (await docker.getContainer(c!.Id).inspect()).Config.Env;
    expect(env.filter((e) => e.startsWith('FIREWALL_OUTBOUND_SUBNETS='))).toEqual(['FIREWALL_OUTBOUND_SUBNETS=127.0.0.1/32']);
  });

  it('SOCKS5 host names with CR/LF or other bytes outside a host name are refused before any node sees them', async () => {
    const before = await rejected();
    const injected = [`x.example:80 HTTP/1.1\r\nHost: x\r\n\r\nCONNECT localhost:${controlPorts[0]}`, 'a\nb.example', 'a b.example', '0x7f.1'];
    for (const name of injected) {
      const r = await rawExchange(proxyPort, socksDomain(`${USER}-country-jp`, PASS, name, 80), 3000);
      expect([...r.bytes], JSON.stringify(name)).toEqual([5, 2, 1, 0, 5, 1, 0, 1, 0, 0, 0, 0, 0, 0]);
    }
    expect(await rejectedGrowth(before, 'malformed', injected.length)).toBeGreaterThanOrEqual(injected.length);
  });

  it('a target that refuses connections is the target’s error: passed to the client, no node marked failed', async () => {
    const watch = watchSubjects(nc, ['lb.evt.connfail', 'health.evt.changed']);
    type Traffic = { nodeId: string; totalConnections: number; failedConnections: number };
    const traffic = async () => (await natsRequest<{ nodes: Traffic[] }>(nc, 'lb.req.traffic', { nodeIds })).nodes;
    const failedBefore = (await traffic()).map((t) => t.failedConnections);
    const dead = await freePort(); // nothing listens there: the node's connect is refused
    for (let i = 0; i < 20; i++) {
      const r = await rawExchange(proxyPort, connectRequest(`localhost:${dead}`), 3000);
      expect(statusLine(r.bytes), `attempt ${i}`).toMatch(/^HTTP\/1\.1 502 /);
      expect(r.bytes.toString()).toContain('node answered CONNECT with 502');
    }
    const s = await rawExchange(proxyPort, socksDomain(`${USER}-country-jp`, PASS, 'localhost', dead), 3000);
    expect(socksCode(s.bytes)).toBe(0x04);
    await sleep(1_500); // a flush of the counters, and time for a health change to show
    expect((await traffic()).map((t) => t.failedConnections)).toEqual(failedBefore);
    expect(watch.seen.filter((m) => m.subject === 'lb.evt.connfail')).toEqual([]);
    const health = await natsRequest<{ nodes: Array<{ status: string }> }>(nc, 'health.req.status', { nodeIds });
    expect(health.nodes.map((n) => n.status)).toEqual(['healthy']);
  });

  it('one client address holds at most LB_MAX_CONNECTIONS_PER_CLIENT connections; the next is dropped and counted', async () => {
    const before = await rejected();
    const held: Socket[] = [];
    try {
      for (let i = 0; i < 8; i++) {
        const s = connect(proxyPort, '127.0.0.1');
        s.on('error', () => undefined);
        held.push(s);
        s.write(connectRequest(`localhost:${target.port}`));
        const [answer] = (await Promise.race([new Promise((resolve) => s.once('data', (d: Buffer) => resolve([d]))), sleep(3000).then(() => [Buffer.from('timeout')])])) as [
          Buffer,
        ];
        expect(statusLine(answer), `tunnel ${i}`).toBe('HTTP/1.1 200 Connection Established');
      }
      const ninth = await rawExchange(proxyPort, connectRequest(`localhost:${target.port}`), 3000);
      expect(ninth).toMatchObject({ closed: true });
      expect(ninth.bytes.length).toBe(0);
      expect(await rejectedGrowth(before, 'limit', 1)).toBeGreaterThanOrEqual(1);
      held.pop()!.destroy();
      const again = await eventually(
        () => rawExchange(proxyPort, connectRequest(`localhost:${target.port}`), 500),
        (r) => r.bytes.length > 0,
        3_000,
        'a connection admitted again',
        { returnLast: true, intervalMs: 100 },
      );
      expect(statusLine(again.bytes)).toBe('HTTP/1.1 200 Connection Established');
    } finally {
      for (const s of held) s.destroy();
    }
  });
});
