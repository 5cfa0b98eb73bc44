import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, freePort, rawExchange, startLoopbackTarget, startTestSystem, type LoopbackTarget, type TestSystem } from '@switchyard/testkit';

// Proxy users end to end: a member creates them through the real gateway, the load balancer
// (two workers, connections handed out in turn so consecutive ones reach both) learns them
// over NATS only, and clients of a real exit node present them. Tenant A owns one JP exit pool
// on the host network (so its node reaches the test's loopback target); tenant B owns none.

const WORKERS = 2;

function curl(args: string[], timeoutMs = 10_000): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--max-time', String(timeoutMs / 1000), ...args], { timeout: timeoutMs + 2000 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, out: stdout, err: stderr });
    });
  });
}

describe('proxy users through the gateway, the load balancer and an exit pool', () => {
  let sys: TestSystem;
  let target: LoopbackTarget;
  let proxyPort: number;
  const a = { id: '', key: '' };
  const b = { id: '', key: '' };
  let shopA: { id: string; password: string };
  let shopB: { id: string; password: string };

  /** The HTTP status of one absolute-form GET through the proxy, on a fresh connection. */
  async function statusOf(user: string | undefined, password = ''): Promise<number> {
    const auth = user === undefined ? '' : `Proxy-Authorization: Basic ${Buffer.from(`${user}:${password}`).toString('base64')}\r\n`;
    const host = new URL(target.url).host;
    const { bytes } = await rawExchange(proxyPort, `GET ${target.url}/hello HTTP/1.1\r\nHost: ${host}\r\n${auth}\r\n`);
    return Number(/^HTTP\/1\.[01] (\d{3})/.exec(bytes.toString('latin1'))?.[1] ?? 0);
  }

  /** Statuses of one request per worker (the primary hands connections to the workers in turn). */
  async function everyWorker(user: string | undefined, password = ''): Promise<number[]> {
    const out: number[] = [];
    for (let i = 0; i < 2 * WORKERS; i++) out.push(await statusOf(user, password));
    return out;
  }

  const all = (status: number) => Array(2 * WORKERS).fill(status);

  async function tenant(name: string, into: { id: string; key: string }) {
    const res = await sys.http('POST', '/v1/tenants', { body: { name } });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    into.id = res.body.id;
    into.key = res.body.apiKey;
  }

  async function createUser(key: string, name: string): Promise<{ id: string; password: string }> {
    const res = await sys.http('POST', '/v1/proxy-users', { key, body: { name } });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body;
  }

  beforeAll(async () => {
    target = await startLoopbackTarget();
    proxyPort = await freePort();
    sys = await startTestSystem();
    // Members may ask for the host network only when the operator says so (pool policy).
    await sys.start('api-gateway', { HOST_NETWORK_TENANTS: 'tenant-a' });
    await sys.start('exit-node-manager');
    await tenant('tenant-a', a);
    await tenant('tenant-b', b);
    const placed = await sys.http('POST', '/v1/orders', {
      key: a.key,
      body: { type: 'pool.create', pool: { name: 'jp', kind: 'exit', country: 'JP', network: 'host', nodes: { min: 1, max: 1 } } },
    });
    expect(placed.status, JSON.stringify(placed.body)).toBe(202);
    const done = await sys.waitForOrder(placed.body.id, ['fulfilled', 'failed'], { key: a.key, timeoutMs: 60_000 });
    expect(done.status, JSON.stringify(done)).toBe('fulfilled');
    // Created before the load balancer starts: it can only learn this one from the snapshot.
    shopA = await createUser(a.key, 'shop');
    await sys.start('load-balancer', {
      LB_PROXY_PORT: String(proxyPort),
      LB_WORKERS: String(WORKERS),
      LB_ACCEPT: 'primary',
      // Long, so what the running load balancer learns below comes from the events.
      LB_REBUILD_INTERVAL_MS: '600000',
      // As in production: with no credential left the ports close rather than open.
      LB_OPEN_PROXY: 'false',
    });
  }, 150_000);

  afterAll(async () => {
    await sys?.close();
    await target?.close();
  });

  it("every worker accepts a member's user, from its snapshot at start, for its own tenant's pool; a wrong or missing password is refused", async () => {
    // Ready means the first rebuild was tried, but the node may still be starting.
    await eventually(
      () => everyWorker('shop-country-jp', shopA.password),
      (s) => s.every((x) => x === 200),
      20_000,
      'shop accepted by every worker',
    );
    const socks = await curl(['--socks5-hostname', `127.0.0.1:${proxyPort}`, '--proxy-user', `shop-country-jp:${shopA.password}`, `${target.url}/hello`]);
    expect(socks).toMatchObject({ code: 0, out: 'hello' });
    // Without a country the user reaches its tenant's pools of any country.
    expect(await statusOf('shop', shopA.password)).toBe(200);

    expect(await everyWorker('shop-country-jp', `${shopA.password}x`)).toEqual(all(407));
    expect(await everyWorker('shop-country-jp', shopA.password.slice(0, -1))).toEqual(all(407));
    expect(await everyWorker(undefined)).toEqual(all(407));
    expect(await everyWorker('nobody-country-jp', shopA.password)).toEqual(all(407));
    const socksWrong = await curl(['--socks5-hostname', `127.0.0.1:${proxyPort}`, '--proxy-user', 'shop-country-jp:nope', `${target.url}/hello`]);
    expect(socksWrong.code).toBe(97); // curl: the SOCKS5 proxy rejected the credentials
  });

  it('lists users without a password or hash', async () => {
    const res = await sys.http('GET', '/v1/proxy-users', { key: a.key });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ users: [{ id: shopA.id, name: 'shop', createdAt: expect.any(String) }] });
    const text = JSON.stringify(res.body);
    expect(text).not.toContain(shopA.password);
    expect(text).not.toMatch(/hash|salt|password/);
  });

  it("another tenant's user, even of the same name, reaches only its own tenant's pools", async () => {
    shopB = await createUser(b.key, 'shop');
    // Learned from proxyuser.evt.created: authenticated (no 407) but tenant B has no pool.
    await eventually(
      () => everyWorker('shop-country-jp', shopB.password),
      (s) => s.every((x) => x === 503),
      5_000,
      "B's shop known to every worker",
    );
    expect(await everyWorker('shop', shopB.password)).toEqual(all(503));
    // A's password still opens A's pool only.
    expect(await everyWorker('shop-country-jp', shopA.password)).toEqual(all(200));
  });

  it("a member cannot revoke another tenant's user: 404, and the user keeps working", async () => {
    const attack = await sys.http('DELETE', `/v1/proxy-users/${shopA.id}`, { key: b.key });
    expect(attack.status).toBe(404);
    expect(attack.body.error).toBe('not_found');
    expect((await sys.http('GET', '/v1/proxy-users', { key: b.key })).body.users.map((u: { name: string }) => u.name)).toEqual(['shop']);
    expect(await everyWorker('shop-country-jp', shopA.password)).toEqual(all(200));
  });

  it("a member flooding wrong passwords for another tenant's user name does not lock out the other users", async () => {
    // Known to every worker but never verified, so its first check in each worker needs scrypt.
    const fresh = await createUser(a.key, 'fresh');
    // Created after it: once every worker accepts the marker, the earlier event arrived too.
    const marker = await createUser(a.key, 'marker');
    await eventually(
      () => everyWorker('marker-country-jp', marker.password),
      (s) => s.every((x) => x === 200),
      5_000,
      'marker accepted by every worker',
    );
    // Tenant B's member knows the name "shop" (its own user has it too, so each guess is
    // checked against both tenants' users) and opens 200 connections at once with guesses.
    const host = new URL(target.url).host;
    let answered = 0;
    const flood = Array.from({ length: 200 }, (_, i) => {
      const auth = Buffer.from(`shop-country-jp:guess-${i}`).toString('base64');
      return rawExchange(proxyPort, `GET ${target.url}/hello HTTP/1.1\r\nHost: ${host}\r\nProxy-Authorization: Basic ${auth}\r\n\r\n`, 30_000).then((r) => {
        answered++;
        return Number(/^HTTP\/1\.[01] (\d{3})/.exec(r.bytes.toString('latin1'))?.[1] ?? 0);
      });
    });
    // The first answers are the guesses refused at once: the others are still being checked.
    await eventually(
      () => answered,
      (n) => n >= 20,
      10_000,
      'first flood answers',
      { intervalMs: 5 },
    );
    expect(await everyWorker('fresh-country-jp', fresh.password)).toEqual(all(200));
    expect(await Promise.all(flood)).toEqual(Array(200).fill(407));
    for (const u of [fresh, marker]) expect((await sys.http('DELETE', `/v1/proxy-users/${u.id}`, { key: a.key })).status).toBe(204);
  });

  it('a revoked user is refused by every worker within a second of its revocation', async () => {
    const extra = await createUser(a.key, 'spare');
    await eventually(
      () => everyWorker('spare-country-jp', extra.password),
      (s) => s.every((x) => x === 200),
      5_000,
      'spare accepted by every worker',
    );
    // Its successful verifications are cached in every worker now: the revocation must win over them.
    const res = await sys.http('DELETE', `/v1/proxy-users/${extra.id}`, { key: a.key });
    const revokedAt = Date.now();
    expect(res.status).toBe(204);
    const seen = await eventually(
      () => everyWorker('spare-country-jp', extra.password),
      (s) => s.every((x) => x === 407),
      Math.max(0, revokedAt + 1000 - Date.now()),
      'spare refused',
      { intervalMs: 20, returnLast: true },
    );
    expect(seen).toEqual(all(407));
    const socks = await curl(['--socks5-hostname', `127.0.0.1:${proxyPort}`, '--proxy-user', `spare-country-jp:${extra.password}`, `${target.url}/hello`]);
    expect(socks.code).toBe(97);
    // The tenant's other user is untouched.
    expect(await everyWorker('shop-country-jp', shopA.password)).toEqual(all(200));
    expect((await sys.http('GET', '/v1/proxy-users', { key: a.key })).body.users.map((u: { name: string }) => u.name)).toEqual(['shop']);
  });

  it('revoking the last user closes the ports: nothing opens them unauthenticated', async () => {
    expect((await sys.http('DELETE', `/v1/proxy-users/${shopA.id}`, { key: a.key })).status).toBe(204);
    expect((await sys.http('DELETE', `/v1/proxy-users/${shopB.id}`, { key: b.key })).status).toBe(204);
    await eventually(
      () => everyWorker('shop-country-jp', shopA.password),
      (s) => s.every((x) => x === 407),
      5_000,
      'shop refused',
    );
    expect(await everyWorker(undefined)).toEqual(all(407));
    expect(await everyWorker('country-jp', 'x')).toEqual(all(407));
    const socksNone = await rawExchange(proxyPort, Buffer.from([5, 1, 0]), 3000);
    expect([...socksNone.bytes]).toEqual([5, 0xff]);
  });
});
