import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { createBus } from '@switchyard/bus';
import { eventually, watchSubjects, startTestSystem, type SubjectWatch, type TestSystem } from '@switchyard/testkit';

const DEFAULTS = { idleWindowSec: 600, minAwake: 0, probeIntervalMs: 30, probeTimeoutMs: 10_000 };

// The sleep endpoints of a real gateway, with a real exit-node-manager owning the pool and
// its node. The commands they order are watched on NATS; the real sleep-controller joins
// for the round trip.
describe('the sleep API', () => {
  let sys: TestSystem;
  let nc: NatsConnection;
  let commands: SubjectWatch;
  let tenantId: string;
  let otherKey: string;
  let poolId: string;
  let nodeId: string;

  beforeAll(async () => {
    sys = await startTestSystem();
    await sys.start('api-gateway', { SERVICE_REQUEST_TIMEOUT_MS: '1000' });
    await sys.start('exit-node-manager', { EXIT_NODE_NETWORK: 'host' });
    nc = await sys.natsClient();
    commands = watchSubjects(nc, ['sleep.cmd.policy', 'sleep.cmd.node', 'node.cmd.wake']);
    tenantId = (await sys.db.query<{ id: string }>("select id from tenants where name = 'admin'"))[0]!.id;
    otherKey = (await sys.http('POST', '/v1/tenants', { body: { name: 'other' } })).body.apiKey;
    const placed = await sys.http('POST', '/v1/orders', {
      body: { type: 'pool.create', pool: { name: 'sleepy', kind: 'exit', country: 'JP', network: 'host', nodes: { min: 1, max: 1 } } },
    });
    const order = await sys.waitForOrder(placed.body.id, ['fulfilled', 'failed'], { timeoutMs: 60_000 });
    expect(order.status).toBe('fulfilled');
    poolId = order.result.poolId;
    nodeId = order.result.nodeIds[0];
  }, 90_000);
  afterAll(async () => {
    await sys?.close();
  });

  const orderCount = async () => (await sys.http('GET', '/v1/orders?limit=200')).body.orders.length;

  it('refuses a bad policy with 400 naming the field, and orders nothing', async () => {
    const before = await orderCount();
    const cases: Array<[string, { body?: unknown; rawBody?: string }, string, RegExp]> = [
      ['zero window', { body: { enabled: true, idleWindowSec: 0 } }, 'idleWindowSec', />= 1/],
      ['negative window', { body: { enabled: true, idleWindowSec: -60 } }, 'idleWindowSec', />= 1/],
      ['fractional window', { body: { enabled: true, idleWindowSec: 1.5 } }, 'idleWindowSec', /integer/],
      ['unknown field', { body: { enabled: true, idleWindow: 600 } }, 'idleWindow', /unknown field/],
      ['no enabled', { body: { idleWindowSec: 600 } }, 'enabled', /required/],
      ['enabled not a boolean', { body: { enabled: 'yes' } }, 'enabled', /boolean/],
      ['timeout shorter than the default interval', { body: { enabled: true, probeTimeoutMs: 10 } }, 'probeTimeoutMs', /must not be shorter than probeIntervalMs \(30\)/],
      [
        'timeout shorter than the interval',
        { body: { enabled: true, probeIntervalMs: 500, probeTimeoutMs: 100 } },
        'probeTimeoutMs',
        /must not be shorter than probeIntervalMs \(500\)/,
      ],
      ['negative min awake', { body: { enabled: true, minAwake: -1 } }, 'minAwake', />= 0/],
      ['malformed JSON', { rawBody: '{"enabled":' }, 'body', /./],
    ];
    for (const [label, req, field, message] of cases) {
      const res = await sys.http('PUT', `/v1/pools/${poolId}/sleep`, req);
      expect(res.status, label).toBe(400);
      expect(res.body.error, label).toBe('bad_request');
      expect(res.body.issues, label).toEqual([{ field, message: expect.stringMatching(message) }]);
    }
    const badId = await sys.http('PUT', '/v1/pools/sleepy/sleep', { body: { enabled: true } });
    expect(badId.status).toBe(400);
    expect(badId.body.issues[0].field).toBe('params.id');
    expect(await orderCount()).toBe(before);
    expect(commands.seen.filter((m) => m.subject === 'sleep.cmd.policy')).toEqual([]);
  });

  it("answers 404 for a pool or node that is not the caller's", async () => {
    const before = await orderCount();
    const unknown = randomUUID();
    const cases: Array<[string, string, string | undefined, string]> = [
      ['PUT', `/v1/pools/${unknown}/sleep`, undefined, `no pool ${unknown}`],
      ['PUT', `/v1/pools/${poolId}/sleep`, otherKey, `no pool ${poolId}`],
      ['GET', `/v1/pools/${unknown}/sleep`, undefined, `no pool ${unknown}`],
      ['GET', `/v1/pools/${poolId}/sleep`, otherKey, `no pool ${poolId}`],
      ['POST', `/v1/nodes/${unknown}/sleep`, undefined, `no node ${unknown}`],
      ['POST', `/v1/nodes/${nodeId}/sleep`, otherKey, `no node ${nodeId}`],
      ['POST', `/v1/nodes/${unknown}/wake`, undefined, `no node ${unknown}`],
      ['POST', `/v1/nodes/${nodeId}/wake`, otherKey, `no node ${nodeId}`],
    ];
    for (const [method, path, key, message] of cases) {
      const res = await sys.http(method, path, { ...(method === 'PUT' ? { body: { enabled: true } } : {}), ...(key ? { key } : {}) });
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(res.body, `${method} ${path}`).toEqual({ error: 'not_found', message });
    }
    expect((await sys.http('POST', '/v1/nodes/web-0/wake')).body.issues[0].field).toBe('params.id');
    expect(await orderCount()).toBe(before);
  });

  it('places a policy as an order whose command carries the whole policy, defaults filled in', async () => {
    const res = await sys.http('PUT', `/v1/pools/${poolId}/sleep`, { body: { enabled: true, idleWindowSec: 5 } });
    expect(res.status).toBe(202);
    const policy = { enabled: true, ...DEFAULTS, idleWindowSec: 5 };
    expect(res.headers.get('location')).toBe(`/v1/orders/${res.body.id}`);
    expect(res.body).toMatchObject({ type: 'pool.sleep_policy', status: 'accepted', policy, request: { type: 'pool.sleep_policy', poolId, policy }, result: { poolId } });

    const command = await commands.next((m) => m.subject === 'sleep.cmd.policy' && m.data.orderId === res.body.id, 5_000);
    expect(command.data).toEqual({ orderId: res.body.id, tenantId, poolId, policy });

    // The sleep controller ends the order; the gateway follows it like any other.
    await createBus(nc, 'sleep-controller').publish('order.evt.fulfilled', { orderId: res.body.id, tenantId, result: { poolId } });
    const done = await sys.waitForOrder(res.body.id, ['fulfilled', 'failed'], { timeoutMs: 10_000 });
    expect(done).toMatchObject({ type: 'pool.sleep_policy', status: 'fulfilled' });

    const off = await sys.http('PUT', `/v1/pools/${poolId}/sleep`, { body: { enabled: false } });
    expect(off.body.policy).toEqual({ enabled: false, ...DEFAULTS });
    expect((await commands.next((m) => m.subject === 'sleep.cmd.policy' && m.data.orderId === off.body.id, 5_000)).data.policy).toEqual({ enabled: false, ...DEFAULTS });
  });

  it('reads the policy from the sleep controller: 503 naming it when silent, the defaults flagged when it has none', async () => {
    const silent = await sys.http('GET', `/v1/pools/${poolId}/sleep`);
    expect(silent.status).toBe(503);
    expect(silent.body).toEqual({ error: 'unavailable', message: 'sleep-controller is unavailable; retry shortly' });
    expect(silent.headers.get('retry-after')).toBe('2');

    // Stands in for the sleep controller's sleep.req.policy endpoint.
    const asked: unknown[] = [];
    let held: Array<{ tenantId: string; poolId: string; policy: unknown; updatedAt: string }> = [];
    const responder: Subscription = nc.subscribe('sleep.req.policy', {
      callback: (err, msg) => {
        if (err) return;
        asked.push(msg.json());
        msg.respond(JSON.stringify({ policies: held }));
      },
    });
    try {
      const none = await sys.http('GET', `/v1/pools/${poolId}/sleep`);
      expect(none.status).toBe(200);
      expect(none.body).toEqual({ poolId, policy: { enabled: false, ...DEFAULTS }, default: true, updatedAt: null });
      expect(asked).toEqual([{ tenantId, poolId }]);

      const policy = { enabled: true, idleWindowSec: 5, minAwake: 1, probeIntervalMs: 20, probeTimeoutMs: 5_000 };
      const updatedAt = '2026-11-24T10:00:00.000Z';
      held = [
        { tenantId, poolId: randomUUID(), policy: { ...policy, idleWindowSec: 99 }, updatedAt },
        { tenantId, poolId, policy, updatedAt },
      ];
      const set = await sys.http('GET', `/v1/pools/${poolId}/sleep`);
      expect(set.status).toBe(200);
      expect(set.body).toEqual({ poolId, policy, default: false, updatedAt });
    } finally {
      responder.unsubscribe();
    }
  });

  it('tells how the socket activator reaches a node: 503 naming it when silent, then its public ports in proxy mode', async () => {
    const silent = await sys.http('GET', `/v1/nodes/${nodeId}/activation`);
    expect(silent.status).toBe(503);
    expect(silent.body.message).toBe('socket-activator is unavailable; retry shortly');
    expect((await sys.http('GET', `/v1/nodes/${randomUUID()}/activation`)).status).toBe(404);

    const activator = await sys.start('socket-activator');
    try {
      // Proxy mode gives every node with ports a public port of the activator's own.
      const seen = await eventually(
        () => sys.http('GET', `/v1/nodes/${nodeId}/activation`),
        (r) => r.status === 200 && r.body.ports.length > 0 && r.body.ports.every((p: { publicPort: number | null }) => p.publicPort !== null),
        15_000,
        "the node's public ports",
      );
      expect(seen.body).toMatchObject({ nodeId, mode: 'proxy', state: 'awake' });
      const node = (await sys.http('GET', `/v1/nodes/${nodeId}`)).body;
      expect(seen.body.ports.map((p: { name: string; hostPort: number }) => [p.name, p.hostPort]).sort()).toEqual(
        node.ports.map((p: { name: string; hostPort: number }) => [p.name, p.hostPort]).sort(),
      );
    } finally {
      await activator.stop('SIGTERM');
    }
  });

  it('orders a manual sleep from the sleep controller and a wake from exit-node-manager', async () => {
    const slept = await sys.http('POST', `/v1/nodes/${nodeId}/sleep`);
    expect(slept.status).toBe(202);
    expect(slept.headers.get('location')).toBe(`/v1/orders/${slept.body.id}`);
    expect(slept.body).toMatchObject({ type: 'node.sleep', status: 'accepted', request: { type: 'node.sleep', nodeId }, result: { nodeId } });
    const sleep = await commands.next((m) => m.subject === 'sleep.cmd.node' && m.data.orderId === slept.body.id, 5_000);
    expect(sleep.data).toEqual({ orderId: slept.body.id, tenantId, nodeId, reason: 'manual' });

    const woken = await sys.http('POST', `/v1/nodes/${nodeId}/wake`);
    expect(woken.status).toBe(202);
    expect(woken.body).toMatchObject({ type: 'node.wake', status: 'accepted', request: { type: 'node.wake', nodeId }, result: { nodeId } });
    const wake = await commands.next((m) => m.subject === 'node.cmd.wake' && m.data.orderId === woken.body.id, 5_000);
    expect(wake.data).toEqual({ orderId: woken.body.id, tenantId, nodeId, reason: 'manual' });
    expect((await sys.http('GET', `/v1/orders/${woken.body.id}`)).body.type).toBe('node.wake');
  });

  it('with the real sleep-controller, reads back the policy it set, and the timeline records the change', async () => {
    await sys.start('sleep-controller');
    // It first carries out what the tests above queued (policies, a manual sleep it cannot arm
    // without an activator); the policy below must come last.
    const jsm = await jetstreamManager(nc);
    await eventually(
      () => jsm.streams.info('CMD_SLEEP_CONTROLLER'),
      (info) => info.state.messages === 0,
      20_000,
      'earlier sleep commands carried out',
    );

    const policy = { enabled: true, idleWindowSec: 7, minAwake: 1, probeIntervalMs: 25, probeTimeoutMs: 4_000 };
    const placed = await sys.http('PUT', `/v1/pools/${poolId}/sleep`, { body: policy });
    expect(placed.status).toBe(202);
    expect((await sys.waitForOrder(placed.body.id, ['fulfilled', 'failed'], { timeoutMs: 15_000 })).status).toBe('fulfilled');

    const read = await sys.http('GET', `/v1/pools/${poolId}/sleep`);
    expect(read.status).toBe(200);
    expect(read.body).toEqual({ poolId, policy, default: false, updatedAt: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T/) });

    const changes = await eventually(
      async () => (await sys.http('GET', `/v1/activity?poolId=${poolId}&kind=policy_changed&limit=1`)).body.items,
      (items: any[]) => items[0]?.message === 'sleep policy: enabled, idle 7 s, min awake 1',
      10_000,
      'the policy change on the timeline',
    );
    expect(changes[0]).toMatchObject({ poolId, nodeId: null, kind: 'policy_changed', details: policy, at: read.body.updatedAt });
  });

  it('documents the new calls in the OpenAPI document', async () => {
    const { paths } = (await sys.http('GET', '/openapi.json', { key: null })).body;
    const put = paths['/v1/pools/{id}/sleep'].put;
    expect(put.requestBody.content['application/json'].schema.properties.idleWindowSec).toMatchObject({ type: 'integer', minimum: 1, default: 600 });
    expect(Object.keys(put.responses).sort()).toEqual(['202', '400', '404', '503']);
    expect(put.responses['202'].content['application/json'].schema.properties.policy).toBeDefined();
    expect(paths['/v1/pools/{id}/sleep'].get.responses['200'].content['application/json'].schema.properties.default).toMatchObject({ type: 'boolean' });
    expect(paths['/v1/nodes/{id}/sleep'].post.responses['202']).toBeDefined();
    expect(paths['/v1/nodes/{id}/wake'].post.responses['202']).toBeDefined();
    const activity = paths['/v1/activity'].get;
    expect(activity.parameters.map((p: { name: string }) => p.name).sort()).toEqual(['before', 'kind', 'limit', 'nodeId', 'poolId']);
    expect(activity.responses['200'].content['application/json'].schema.properties.items.items.properties.message).toBeDefined();
  });

  it('answers 503 naming exit-node-manager when it cannot say whether the pool or node exists', async () => {
    await sys.processes('exit-node-manager')[0]!.stop('SIGTERM');
    const before = await orderCount();
    for (const [method, path] of [
      ['PUT', `/v1/pools/${poolId}/sleep`],
      ['GET', `/v1/pools/${poolId}/sleep`],
      ['POST', `/v1/nodes/${nodeId}/sleep`],
      ['POST', `/v1/nodes/${nodeId}/wake`],
    ] as const) {
      const res = await sys.http(method, path, method === 'PUT' ? { body: { enabled: true } } : {});
      expect(res.status, `${method} ${path}`).toBe(503);
      expect(res.body.message, `${method} ${path}`).toBe('exit-node-manager is unavailable; retry shortly');
    }
    expect(await orderCount()).toBe(before);
  });
});
