import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import { docker, freePort, HTTP_APP_IMAGE, HTTP_APP_PORT, startTestSystem, type TestSystem } from '@switchyard/testkit';

// A pool's secretEnv on the real services: plaintext only in the request and in the
// container's own environment; sealed in the orders table, the outbox, the pools table and
// every NATS message; never in an API answer, an event or a log line.
describe('secret environment variables', () => {
  let sys: TestSystem;
  let nc: NatsConnection;
  // Everything NATS carried while the test ran, as text: commands, events, requests, replies.
  const heard: string[] = [];
  let member: { id: string; key: string };
  const secret = `s3cret-${randomBytes(12).toString('hex')}`;

  beforeAll(async () => {
    sys = await startTestSystem();
    nc = await sys.natsClient();
    nc.subscribe('>', {
      callback: (err, msg) => {
        if (!err) heard.push(`${msg.subject} ${msg.string()}`);
      },
    });
    await nc.flush();
    // Debug level: the most the services ever log.
    await sys.start('api-gateway', { LOG_LEVEL: 'debug', POOL_IMAGES: HTTP_APP_IMAGE });
    await sys.start('exit-node-manager', { LOG_LEVEL: 'debug' });
    const tenant = await sys.http('POST', '/v1/tenants', { body: { name: `secrets-${randomBytes(3).toString('hex')}` } });
    expect(tenant.status).toBe(201);
    member = { id: tenant.body.id, key: tenant.body.apiKey };
  });
  afterAll(async () => sys?.close());

  const appPool = (name: string, secretEnv: Record<string, string>) => ({
    type: 'pool.create',
    pool: {
      name,
      kind: 'app',
      image: HTTP_APP_IMAGE,
      network: 'bridge',
      nodes: { min: 1, max: 1 },
      ports: [{ name: 'main', containerPort: HTTP_APP_PORT }],
      env: { PLAIN_SETTING: 'visible' },
      secretEnv,
    },
  });

  it('puts the value in the container env and nowhere else', async () => {
    const placed = await sys.http('POST', '/v1/orders', { key: member.key, body: appPool('vault', { APP_TOKEN: secret }) });
    expect(placed.status, JSON.stringify(placed.body)).toBe(202);
    expect(placed.body.request.pool.secretEnv).toEqual({ APP_TOKEN: '(secret)' });
    const order = await sys.waitForOrder(placed.body.id, ['fulfilled', 'failed'], { key: member.key, timeoutMs: 60_000 });
    expect(order.status, order.reason).toBe('fulfilled');
    const poolId = order.result.poolId as string;

    // The container's own config: the one place the plaintext lives.
    const [container] = await docker.listContainers({ all: true, filters: { label: [`io.switchyard.pool=${poolId}`] } });
    const env = (await docker.getContainer(container!.Id).inspect()).Config.Env;
    expect(env).toContain(`APP_TOKEN=${secret}`);
    expect(env).toContain('PLAIN_SETTING=visible');

    // Every answer of the API about this pool, its order, its nodes and what happened.
    const nodeId = order.result.nodeIds?.[0] ?? (await sys.http('GET', `/v1/nodes?poolId=${poolId}`, { key: member.key })).body.nodes[0].id;
    const answers = await Promise.all(
      [
        `/v1/orders/${placed.body.id}`,
        '/v1/orders',
        '/v1/pools',
        `/v1/pools/${poolId}`,
        '/v1/nodes',
        `/v1/nodes?poolId=${poolId}`,
        `/v1/nodes/${nodeId}`,
        '/v1/activity',
        `/v1/nodes/${nodeId}/logs?lines=100`,
      ].map(async (path) => ({ path, ...(await sys.http('GET', path, { key: member.key })) })),
    );
    for (const a of answers) {
      expect(a.status, `${a.path}: ${JSON.stringify(a.body)}`).toBe(200);
      expect(JSON.stringify(a.body), a.path).not.toContain(secret);
    }
    const pool = answers.find((a) => a.path === `/v1/pools/${poolId}`)!.body;
    expect(pool.spec.secretEnv).toEqual({ APP_TOKEN: '(secret)' });
    expect(pool.spec.env).toEqual({ PLAIN_SETTING: 'visible' });
    expect(answers.find((a) => a.path === '/v1/orders')!.body.orders[0].request.pool.secretEnv).toEqual({ APP_TOKEN: '(secret)' });

    // At rest: sealed in the gateway's and the manager's tables.
    const rows = await sys.db.query<{ t: string }>(
      `select request::text as t from orders where id::text = $1
       union all select payload::text from outbox where payload->>'orderId' = $1
       union all select spec::text from pools where id::text = $2`,
      [placed.body.id, poolId],
    );
    expect(rows).toHaveLength(3);
    for (const r of rows) {
      expect(r.t).not.toContain(secret);
      expect(r.t).toMatch(/"APP_TOKEN": ?"v1:[A-Za-z0-9_-]+"/);
    }

    // On the bus: the command went by sealed, and nothing carried the plaintext.
    await nc.flush();
    expect(heard.some((m) => m.startsWith('pool.cmd.create ') && /"APP_TOKEN":"v1:/.test(m))).toBe(true);
    expect(heard.filter((m) => m.includes(secret))).toEqual([]);

    // In the logs of both services.
    for (const p of [...sys.processes('api-gateway'), ...sys.processes('exit-node-manager')]) expect(p.output()).not.toContain(secret);
  }, 90_000);

  it('replays a retry with the same secrets and refuses the key with other secrets', async () => {
    const headers = { 'idempotency-key': `retry-${randomBytes(4).toString('hex')}` };
    const body = appPool('retry', { APP_TOKEN: secret });
    const first = await sys.http('POST', '/v1/orders', { key: member.key, body, headers });
    expect(first.status, JSON.stringify(first.body)).toBe(202);
    const again = await sys.http('POST', '/v1/orders', { key: member.key, body, headers });
    expect(again.status).toBe(202);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body.id).toBe(first.body.id);
    const other = await sys.http('POST', '/v1/orders', { key: member.key, body: appPool('retry', { APP_TOKEN: `${secret}-other` }), headers });
    expect(other.status).toBe(422);
    expect(other.body.error).toBe('idempotency_key_reused');
    expect(JSON.stringify(other.body)).not.toContain(secret);
    await sys.waitForOrder(first.body.id, ['fulfilled', 'failed'], { key: member.key, timeoutMs: 60_000 });
  }, 90_000);

  it('refuses a member a secret value over 4096 bytes, naming the field and not echoing it', async () => {
    const big = `${secret}${'x'.repeat(4096)}`;
    const res = await sys.http('POST', '/v1/orders', { key: member.key, body: appPool('toolarge', { BIG_SECRET: big }) });
    expect(res.status).toBe(400);
    expect(res.body.issues).toEqual([{ field: 'pool.secretEnv.BIG_SECRET', message: `at most 4096 bytes (UTF-8), got ${big.length}` }]);
    expect(JSON.stringify(res.body)).not.toContain(secret);
    // Multi-byte characters count as bytes: 2,000 of them are 6,000 bytes.
    const wide = await sys.http('POST', '/v1/orders', { key: member.key, body: appPool('wide', { WIDE: '€'.repeat(2000) }) });
    expect(wide.status).toBe(400);
    expect(wide.body.issues[0].field).toBe('pool.secretEnv.WIDE');
  });

  it('a gateway without SECRETS_KEY refuses secrets with a 503 and keeps taking other orders', async () => {
    const port = await freePort();
    const keyless = await sys.start('api-gateway', { API_PORT: String(port), SECRETS_KEY: '', POOL_IMAGES: HTTP_APP_IMAGE });
    try {
      const post = (body: unknown) =>
        fetch(`http://127.0.0.1:${port}/v1/orders`, {
          method: 'POST',
          headers: { authorization: `Bearer ${member.key}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
      const refused = await post(appPool('nokey', { APP_TOKEN: secret }));
      expect(refused.status).toBe(503);
      const text = await refused.text();
      expect(JSON.parse(text)).toMatchObject({ error: 'secrets_unavailable', issues: [{ field: 'pool.secretEnv' }] });
      expect(text).toContain('SECRETS_KEY');
      expect(text).not.toContain(secret);
      const plain = await post({ type: 'pool.delete', poolId: '00000000-0000-4000-8000-000000000000' });
      expect(plain.status).toBe(202);
      expect(keyless.output()).not.toContain(secret);
    } finally {
      await keyless.stop('SIGTERM');
    }
  });
});
