import type { NatsConnection } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import { HEADERS } from '@switchyard/contracts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  eventually,
  EXIT_NODE_IMAGE,
  freePort,
  HTTP_APP_IMAGE,
  HTTP_APP_PORT,
  httpGet,
  rawExchange,
  startLoopbackTarget,
  startTestSystem,
  type LoopbackTarget,
  type TestSystem,
} from '@switchyard/testkit';

// Tenants' ACL policies at every front door of the real load balancer: a member puts its
// policy through the gateway, the load balancer (two workers, connections handed out in turn,
// so each check below reaches both) hears it over NATS only, and clients of a real exit node
// and of real app nodes are let through or refused. Tenant A owns an exit pool (tag:exit, host
// network, so its node reaches the test's loopback target) and an app pool (tag:web); tenant B
// owns an app pool with the same tag and never has a policy. Clients connect from loopback
// addresses of their own (127.0.0.x) to play different sources.

const WORKERS = 2;
const OFFICE = '127.0.0.7';
const STRANGER = '127.0.0.8';

interface Tenant {
  id: string;
  key: string;
}

describe('ACL policies at the load balancer', () => {
  let sys: TestSystem;
  let nc: NatsConnection;
  let redis: Redis;
  let target: LoopbackTarget;
  let proxyPort: number;
  let appA: number;
  let appB: number;
  const a: Tenant = { id: '', key: '' };
  const b: Tenant = { id: '', key: '' };
  const users: Record<'alice' | 'bob', string> = { alice: '', bob: '' };

  /** Connections to A's pools refused since the setup: each a denial the load balancer counts. */
  let refusedA = 0;
  const refusal = <T>(value: T, refused: boolean): T => {
    if (refused) refusedA++;
    return value;
  };
  const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  const statusOf = (bytes: Buffer) => Number(/^HTTP\/1\.[01] (\d{3})/.exec(bytes.toString('latin1'))?.[1] ?? 0);

  /** CONNECT to the loopback target's `port` with the request riding along; the first status line (200: the tunnel, then the target's answer). */
  async function connectAs(user: keyof typeof users, port = target.port): Promise<{ status: number; text: string }> {
    const head = `CONNECT localhost:${port} HTTP/1.1\r\nHost: localhost:${port}\r\nProxy-Authorization: ${basic(`${user}-country-jp`, users[user])}\r\n\r\n`;
    const { bytes } = await rawExchange(proxyPort, `${head}GET /hello HTTP/1.0\r\nHost: localhost\r\n\r\n`, 10_000);
    return refusal({ status: statusOf(bytes), text: bytes.toString('latin1') }, statusOf(bytes) === 403);
  }

  /** The same as an absolute-form GET. */
  async function getAs(user: keyof typeof users): Promise<number> {
    const url = `http://localhost:${target.port}/hello`;
    const { bytes } = await rawExchange(proxyPort, `GET ${url} HTTP/1.1\r\nHost: localhost:${target.port}\r\nProxy-Authorization: ${basic(user, users[user])}\r\n\r\n`, 10_000);
    return refusal(statusOf(bytes), statusOf(bytes) === 403);
  }

  /** SOCKS5 with username/password to localhost:`port`, the request riding along; the reply code (0: success) and what followed. */
  async function socksAs(user: keyof typeof users, port = target.port): Promise<{ rep: number | undefined; text: string }> {
    const u = Buffer.from(`${user}-country-jp`);
    const p = Buffer.from(users[user]);
    const name = Buffer.from('localhost');
    const hello = Buffer.concat([
      Buffer.from([5, 1, 2, 1, u.length]),
      u,
      Buffer.from([p.length]),
      p,
      Buffer.from([5, 1, 0, 3, name.length]),
      name,
      Buffer.from([port >> 8, port & 0xff]),
      Buffer.from('GET /hello HTTP/1.0\r\nHost: localhost\r\n\r\n'),
    ]);
    const { bytes } = await rawExchange(proxyPort, hello, 10_000);
    // Method choice (2 bytes), the credentials' answer (2), then the request's reply.
    const rep = bytes.length >= 6 ? bytes[5] : undefined;
    return refusal({ rep, text: bytes.toString('latin1', 14) }, rep === 2);
  }

  /** An app pool's public port from a given source address: the HTTP status, or 0 when the connection was closed without one. */
  const appFrom = (port: number, from?: string) =>
    httpGet(port, '/', 5_000, from ? { localAddress: from } : {}).then(
      (r) => r.status,
      () => refusal(0, port === appA),
    );

  /** One result per worker (the primary hands connections to the workers in turn). */
  async function everyWorker<T>(check: () => Promise<T>): Promise<T[]> {
    const out: T[] = [];
    for (let i = 0; i < 2 * WORKERS; i++) out.push(await check());
    return out;
  }
  const all = <T>(v: T) => Array(2 * WORKERS).fill(v);

  const denials = async (t: Tenant) => (await redis.hgetall(`acl:denied:${t.id}`)) as Record<string, string>;

  async function tenant(name: string, into: Tenant) {
    const res = await sys.http('POST', '/v1/tenants', { body: { name } });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    into.id = res.body.id;
    into.key = res.body.apiKey;
  }

  async function pool(t: Tenant, spec: Record<string, unknown>): Promise<string> {
    const placed = await sys.http('POST', '/v1/orders', { key: t.key, body: { type: 'pool.create', pool: spec } });
    expect(placed.status, JSON.stringify(placed.body)).toBe(202);
    const done = await sys.waitForOrder(placed.body.id, ['fulfilled', 'failed'], { key: t.key, timeoutMs: 60_000 });
    expect(done.status, JSON.stringify(done)).toBe('fulfilled');
    return done.result.poolId;
  }

  async function putPolicy(t: Tenant, policy: Record<string, unknown>): Promise<number> {
    const res = await sys.http('PUT', '/v1/acl', { key: t.key, body: policy });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body.version;
  }

  /** A's policy: alice (group:shoppers) may use the exit pool for the target's port; the office may reach the app pool. */
  const policyOfA = (extra: Array<{ action: 'accept'; src: string[]; dst: string[] }> = []) => ({
    groups: { 'group:shoppers': ['alice'] },
    hosts: { 'office-net': `${OFFICE}/32` },
    tagOwners: { 'tag:exit': ['group:shoppers'], 'tag:web': ['group:shoppers'] },
    acls: [{ action: 'accept', src: ['group:shoppers'], dst: [`tag:exit:${target.port}`] }, { action: 'accept', src: ['office-net'], dst: [`tag:web:${appA}`] }, ...extra],
    tests: [{ src: 'alice', accept: [`tag:exit:${target.port}`], deny: ['tag:exit:22'] }],
  });

  beforeAll(async () => {
    target = await startLoopbackTarget();
    proxyPort = await freePort();
    appA = await freePort();
    appB = await freePort();
    sys = await startTestSystem();
    nc = await sys.natsClient();
    redis = new Redis(process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379');
    await sys.start('api-gateway', { HOST_NETWORK_TENANTS: 'acl-a', POOL_IMAGES: `${HTTP_APP_IMAGE},${EXIT_NODE_IMAGE}` });
    await sys.start('exit-node-manager');
    await tenant('acl-a', a);
    await tenant('acl-b', b);
    const app = (publicPort: number) => ({
      name: 'web',
      kind: 'app',
      image: HTTP_APP_IMAGE,
      network: 'bridge',
      nodes: { min: 1, max: 1 },
      ports: [{ name: 'http', containerPort: HTTP_APP_PORT }],
      publicPort,
      tags: ['tag:web'],
    });
    await Promise.all([
      pool(a, { name: 'jp', kind: 'exit', country: 'JP', network: 'host', nodes: { min: 1, max: 1 }, tags: ['tag:exit'] }),
      pool(a, app(appA)),
      pool(b, app(appB)),
    ]);
    for (const name of ['alice', 'bob'] as const) {
      const res = await sys.http('POST', '/v1/proxy-users', { key: a.key, body: { name } });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      users[name] = res.body.password;
    }
    await sys.start('load-balancer', {
      LB_PROXY_PORT: String(proxyPort),
      LB_WORKERS: String(WORKERS),
      LB_ACCEPT: 'primary',
      // Long: what the running load balancer learns below comes from the events.
      LB_REBUILD_INTERVAL_MS: '600000',
      LB_OPEN_PROXY: 'false',
    });
    // Without a policy everything works as before (the nodes may still be starting).
    await eventually(
      () => everyWorker(() => getAs('bob')),
      (s) => s.every((x) => x === 200),
      30_000,
      'the exit pool through every worker',
    );
    await eventually(
      () => everyWorker(() => appFrom(appA, STRANGER)),
      (s) => s.every((x) => x === 200),
      30_000,
      "A's app pool through every worker",
    );
    await eventually(
      () => appFrom(appB),
      (s) => s === 200,
      30_000,
      "B's app pool",
    );
  }, 240_000);

  afterAll(async () => {
    redis?.disconnect();
    await sys?.close();
    await target?.close();
  });

  it("applies a tenant's new policy live in every worker: allowed at each front door, denied before any node is dialled", async () => {
    await putPolicy(a, policyOfA());
    // Live: the event reaches both workers without a restart or a rebuild.
    await eventually(
      () => everyWorker(() => getAs('bob')),
      (s) => s.every((x) => x === 403),
      10_000,
      'bob refused by every worker',
    );

    // HTTP CONNECT: alice to the target's port; bob, and alice to another port, refused with a reason.
    expect((await everyWorker(() => connectAs('alice'))).map((r) => [r.status, r.text.includes('\r\n\r\nHTTP/1.1 200 OK') || r.text.endsWith('hello')])).toEqual(all([200, true]));
    const refused = await connectAs('bob');
    expect(refused.status).toBe(403);
    expect(refused.text).toContain('the ACL policy does not allow this connection');
    expect((await connectAs('alice', target.port + 1)).status).toBe(403);
    // HTTP absolute form.
    expect(await everyWorker(() => getAs('alice'))).toEqual(all(200));
    // SOCKS5: success and the target's answer; 0x02 "connection not allowed by ruleset".
    const ok = await socksAs('alice');
    expect([ok.rep, ok.text.endsWith('hello')]).toEqual([0, true]);
    expect((await everyWorker(() => socksAs('bob'))).map((r) => r.rep)).toEqual(all(2));
    // An app pool's TCP listener, judged by the client's address: the office is let in; anyone else's connection is closed.
    expect(await everyWorker(() => appFrom(appA, OFFICE))).toEqual(all(200));
    expect(await everyWorker(() => appFrom(appA, STRANGER))).toEqual(all(0));
    expect(await appFrom(appA)).toBe(0);
  });

  it("never touches another tenant's pools, though they carry the same tag", async () => {
    // A's policy names tag:web, which B's pool carries too: B has no policy, so anyone reaches it.
    expect(await everyWorker(() => appFrom(appB, STRANGER))).toEqual(all(200));
    expect(await appFrom(appB)).toBe(200);
    expect(await denials(b)).toEqual({});
  });

  it('counts every denial in Redis per rule, batched', async () => {
    for (let i = 0; i < 10; i++) expect(await getAs('bob')).toBe(403);
    for (let i = 0; i < 5; i++) expect(await appFrom(appA, STRANGER)).toBe(0);
    // Every refusal of this file so far, and only those; accept-only rules: all the default deny's.
    const expected = { default: String(refusedA) };
    const got = await eventually(
      () => denials(a),
      (d) => d['default'] === expected.default,
      10_000,
      'the denials in Redis',
      { returnLast: true },
    );
    expect(got).toEqual(expected);
    expect(await denials(b)).toEqual({});
    // What the tenant reads back through the gateway.
    const view = await sys.http('GET', '/v1/acl', { key: a.key });
    expect(view.body.denials).toEqual({ default: refusedA });
  });

  it('keeps serving under a policy change that does not compile: dead-lettered, the previous policy stays in force', async () => {
    const dead: Array<{ reason: string }> = [];
    const sub = nc.subscribe('dlq.acl.evt.changed', { callback: (_e, m) => void dead.push({ reason: m.headers?.get(HEADERS.deadLetterReason) ?? '' }) });
    try {
      // Valid by the contract's schema, but group:ghost is defined nowhere.
      const bad = { tenantId: a.id, version: 1_000_000, policy: { acls: [{ action: 'accept', src: ['group:ghost'], dst: ['*:*'] }] } };
      nc.publish('acl.evt.changed', JSON.stringify(bad));
      await eventually(
        () => dead.length,
        (n) => n >= 1,
        10_000,
        'the dead letter',
      );
      expect(dead[0]!.reason).toMatch(/compile/);
      expect(await everyWorker(() => getAs('alice'))).toEqual(all(200));
      expect(await everyWorker(() => getAs('bob'))).toEqual(all(403));
      // Its version blocks nothing: the owner's next change applies.
      await putPolicy(a, policyOfA([{ action: 'accept', src: ['bob'], dst: ['tag:exit:*'] }]));
      await eventually(
        () => everyWorker(() => getAs('bob')),
        (s) => s.every((x) => x === 200),
        10_000,
        'bob let in by the new version',
      );
    } finally {
      sub.unsubscribe();
    }
  });

  it('goes back to no policy when the tenant deletes it', async () => {
    const res = await sys.http('DELETE', '/v1/acl', { key: a.key });
    expect(res.status, JSON.stringify(res.body)).toBeLessThan(300);
    await eventually(
      () => everyWorker(() => appFrom(appA, STRANGER)),
      (s) => s.every((x) => x === 200),
      10_000,
      'the app pool open again',
    );
  });
});
