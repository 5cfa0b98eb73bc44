import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { Redis } from 'ioredis';
import { eventually, startOtlpReceiver, docker, poolOrder, startTestSystem, type OtlpReceiver, type TestSystem } from '@switchyard/testkit';

// The walking skeleton through real parts: HTTP → Postgres (order + outbox) → JetStream →
// exit-node-manager → Docker → events → order fulfilled.
describe('an order for an exit pool, end to end', () => {
  let sys: TestSystem;
  let otlp: OtlpReceiver;

  beforeAll(async () => {
    otlp = await startOtlpReceiver();
    sys = await startTestSystem();
    const tracing = { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.endpoint };
    await sys.start('api-gateway', tracing);
    await sys.start('exit-node-manager', tracing);
  });
  afterAll(async () => {
    await sys?.close();
    await otlp?.close();
  });

  it('fulfils the order with a running container labelled with tenant, pool and node', async () => {
    const placed = await sys.http('POST', '/v1/orders', { body: poolOrder('tokyo', 'jp') });
    expect(placed.status).toBe(202);
    expect(placed.headers.get('location')).toBe(`/v1/orders/${placed.body.id}`);
    expect(placed.body.status).toBe('accepted');

    const order = await sys.waitForOrder(placed.body.id, ['fulfilled', 'failed']);
    expect(order.reason).toBeNull();
    expect(order.status).toBe('fulfilled');
    const { poolId, nodeIds } = order.result as { poolId: string; nodeIds: string[] };
    expect(nodeIds).toHaveLength(1);

    const [tenant] = await sys.db.query<{ id: string }>("select id from tenants where name = 'admin'");
    const containers = await docker.listContainers({ filters: { label: [`io.switchyard.node=${nodeIds[0]}`] } });
    expect(containers).toHaveLength(1);
    const info = await docker.getContainer(containers[0]!.Id).inspect();
    expect(info.State.Running).toBe(true);
    expect(info.Config.Labels).toMatchObject({
      'io.switchyard.managed': 'true',
      'io.switchyard.tenant': tenant!.id,
      'io.switchyard.pool': poolId,
      'io.switchyard.node': nodeIds[0],
    });
    expect(info.Config.Env).toContain('SERVER_COUNTRIES=JP');

    // The node is reachable on its published loopback port, and nowhere else. "running" is
    // the container's state; its server may need a moment more to listen.
    const control = info.NetworkSettings.Ports['8000/tcp']?.[0];
    expect(control?.HostIp).toBe('127.0.0.1');
    const status = await firstDefined(
      () =>
        fetch(`http://127.0.0.1:${control!.HostPort}/v1/openvpn/status`).then(
          (r) => r.json(),
          () => undefined,
        ),
      10_000,
      "the node's status",
    );
    expect(status).toEqual({ status: 'running' });
    // Its HTTP proxy answers, and refuses the node's own control server: a client of the proxy
    // must never reach a node's control port (tenant safety). Forwarding to a target is shown
    // through the load balancer, with nodes that may reach the tests' loopback targets
    // (lb-routing, exit-pool-failover).
    const proxy = info.NetworkSettings.Ports['8888/tcp']?.[0];
    expect(proxy?.HostIp).toBe('127.0.0.1');
    expect(await viaProxy(Number(proxy!.HostPort), 'http://127.0.0.1:8000/healthz')).toEqual({ status: 403, body: '127.0.0.1 (127.0.0.1) is not an allowed destination' });

    // Hot state for the data plane, in the real Redis.
    const redis = new Redis(process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379');
    try {
      expect(await redis.hgetall(`node:${nodeIds[0]}`)).toMatchObject({ status: 'running', pool: poolId, tenant: tenant!.id });
    } finally {
      redis.disconnect();
    }

    const listed = await sys.http('GET', `/v1/nodes?poolId=${poolId}`);
    expect(listed.status).toBe(200);
    expect(listed.body.nodes).toMatchObject([{ id: nodeIds[0], poolId, status: 'running' }]);
  });

  it('carries one trace from the HTTP request through NATS to the Docker calls', async () => {
    const traceId = randomBytes(16).toString('hex');
    const clientSpanId = randomBytes(8).toString('hex');
    const placed = await sys.http('POST', '/v1/orders', {
      body: poolOrder('osaka', 'JP'),
      headers: { traceparent: `00-${traceId}-${clientSpanId}-01` },
    });
    await sys.waitForOrder(placed.body.id, ['fulfilled']);
    const inTrace = await firstDefined(
      () => {
        const spans = otlp.spans().filter((s) => s.traceId === traceId);
        return spans.some((s) => s.name === 'docker container.start') && spans.some((s) => s.name === 'order.evt.fulfilled process') ? spans : undefined;
      },
      15_000,
      "the order's spans",
    );
    expect(new Set(inTrace.map((s) => s.service))).toEqual(new Set(['api-gateway', 'exit-node-manager']));
    expect(inTrace.map((s) => `${s.service}: ${s.name}`)).toEqual(
      expect.arrayContaining([
        'api-gateway: POST /v1/orders',
        'api-gateway: pool.cmd.create publish',
        'exit-node-manager: pool.cmd.create process',
        'exit-node-manager: docker container.create',
        'exit-node-manager: docker container.start',
        'exit-node-manager: order.evt.fulfilled publish',
        'api-gateway: order.evt.fulfilled process',
      ]),
    );
    // Every span hangs off another span of the same trace (or the caller's): no broken links.
    const ids = new Set([clientSpanId, ...inTrace.map((s) => s.spanId)]);
    for (const s of inTrace) expect(ids.has(s.parentSpanId), `${s.service}: ${s.name}`).toBe(true);
  });

  it('scopes orders to the caller tenant: another tenant gets 404 for the same id', async () => {
    const created = await sys.http('POST', '/v1/tenants', { body: { name: 'acme' } });
    expect(created.status).toBe(201);
    const acmeKey = created.body.apiKey as string;
    const mine = await sys.http('POST', '/v1/orders', { body: poolOrder('frankfurt', 'DE') });
    const theirs = await sys.http('GET', `/v1/orders/${mine.body.id}`, { key: acmeKey });
    expect(theirs.status).toBe(404);
    expect(theirs.body).toEqual({ error: 'not_found', message: `no order ${mine.body.id}` });
    const list = await sys.http('GET', '/v1/orders', { key: acmeKey });
    expect(list.body.orders).toEqual([]);
    const forbidden = await sys.http('POST', '/v1/tenants', { body: { name: 'other' }, key: acmeKey });
    expect(forbidden.status).toBe(403);
    await sys.waitForOrder(mine.body.id, ['fulfilled', 'failed']);
  });

  it('places an order once per Idempotency-Key, however often the client retries', async () => {
    const key = `retry-${randomBytes(4).toString('hex')}`;
    const body = poolOrder('dublin', 'IE');
    const first = await sys.http('POST', '/v1/orders', { body, headers: { 'idempotency-key': key } });
    const again = await sys.http('POST', '/v1/orders', {
      body: { pool: { nodes: { max: 1, min: 1 }, country: 'IE', kind: 'exit', name: 'dublin' }, type: 'pool.create' },
      headers: { 'idempotency-key': key },
    });
    expect(first.status).toBe(202);
    expect(again.status).toBe(202);
    expect(again.body.id).toBe(first.body.id);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    const rows = await sys.db.query<{ n: string }>("select count(*) as n from outbox where payload->>'orderId' = $1", [first.body.id]);
    expect(rows).toEqual([{ n: '1' }]);

    const other = await sys.http('POST', '/v1/orders', { body: poolOrder('cork', 'IE'), headers: { 'idempotency-key': key } });
    expect(other.status).toBe(422);
    expect(other.body.issues).toEqual([{ field: 'headers.idempotency-key', message: 'already used for a different request' }]);
    expect((await sys.waitForOrder(first.body.id, ['fulfilled', 'failed'])).status).toBe('fulfilled');
  });

  it('documents itself: an OpenAPI document built from the validating schemas', async () => {
    const doc = await sys.http('GET', '/openapi.json', { key: null });
    expect(doc.status).toBe(200);
    expect(doc.body.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.body.paths)).toEqual(expect.arrayContaining(['/v1/orders', '/v1/orders/{id}', '/v1/tenants', '/v1/nodes']));
    expect(doc.body.paths['/v1/orders'].post.requestBody.content['application/json'].schema.properties.type).toBeDefined();
  });

  it('answers bad input with 400 naming the field, and unknown ids with 404', async () => {
    const cases: Array<[string, { body?: unknown; rawBody?: string }, string]> = [
      ['malformed JSON', { rawBody: '{"type":"pool.create",' }, 'body'],
      ['unknown field', { body: { ...poolOrder('a'), colour: 'red' } }, 'colour'],
      ['wrong type', { body: { type: 'pool.create', pool: { name: 'a', kind: 'exit', country: 'JP', nodes: { min: 'one', max: 1 } } } }, 'pool.nodes.min'],
      ['unknown country', { body: poolOrder('a', 'XX') }, 'pool.country'],
      ['missing pool', { body: { type: 'pool.create' } }, 'pool'],
      ['unknown order type', { body: { type: 'pool.explode' } }, 'type'],
    ];
    for (const [label, req, field] of cases) {
      const res = await sys.http('POST', '/v1/orders', req);
      expect(res.status, label).toBe(400);
      expect(res.body.error, label).toBe('bad_request');
      expect(
        res.body.issues.map((i: { field: string }) => i.field),
        label,
      ).toContain(field);
    }
    const badKey = await sys.http('POST', '/v1/orders', { body: poolOrder('a'), headers: { 'idempotency-key': 'has spaces' } });
    expect(badKey.status).toBe(400);
    expect(badKey.body.issues.map((i: { field: string }) => i.field)).toEqual(['headers.idempotency-key']);
    expect((await sys.http('GET', '/v1/orders/6f1c2a7e-0000-4000-8000-000000000000')).status).toBe(404);
    expect((await sys.http('GET', '/v1/orders/not-a-uuid')).status).toBe(400);
    expect((await sys.http('GET', '/v1/orders', { key: null })).status).toBe(401);
    expect((await sys.http('GET', '/v1/orders', { key: 'sy_wrong' })).status).toBe(401);
  });
});

function viaProxy(proxyPort: number, url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: proxyPort, path: url, headers: { host: new URL(url).host } }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c)).on('end', () => resolve({ status: res.statusCode ?? 0, body: body.trim() }));
    });
    req.on('error', reject).end();
  });
}

/** The first value `probe` gives that is not undefined (a failed probe counts as none). */
async function firstDefined<T>(probe: () => T | undefined | Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const read = async () => {
    try {
      return await probe();
    } catch {
      return undefined;
    }
  };
  return (await eventually(read, (v) => v !== undefined, timeoutMs, what, { intervalMs: 100 }))!;
}
