import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { createBus } from '@switchyard/bus';
import type { TunnelSpec, TunnelView } from '@switchyard/contracts';
import { createAppPool, eventually, startTestSystem, watchSubjects, type AppNode, type SubjectWatch, type TestSystem } from '@switchyard/testkit';

type Tunnel = import('typebox').Static<typeof TunnelView>;

/** A tunnel as tunnel-manager would list it: open, on wireguard, with the public half of its key. */
function aTunnel(tenantId: string, nodeId: string, name: string): Tunnel {
  const at = '2026-12-07T10:00:00.000Z';
  return {
    tenantId,
    tunnelId: randomUUID(),
    spec: { name, nodeId, port: 8000, paths: [{ kind: 'wireguard' }, { kind: 'ssh' }] },
    status: 'open',
    reason: null,
    endpoint: { host: 'edge.test', port: 40001 },
    paths: [
      {
        kind: 'wireguard',
        state: 'up',
        active: true,
        latencyMs: 0.4,
        reason: null,
        changedAt: at,
        key: { fingerprint: 'wg:3q2+7w==', createdAt: at, expiresAt: '2027-03-07T10:00:00.000Z' },
      },
      { kind: 'ssh', state: 'down', active: false, latencyMs: null, reason: 'ssh probe failed 3× (ECONNREFUSED)', changedAt: at, key: null },
    ],
    createdAt: at,
    rotatedAt: at,
    nextRotationAt: '2026-12-14T10:00:00.000Z',
  };
}

// The /v1/tunnels endpoints of a real gateway, with a real exit-node-manager owning an app node
// that publishes port 8000. The gateway's side alone: a responder of this file stands in for
// tunnel-manager's tunnel.req.list (here it can misbehave on purpose, answering with another
// tenant's tunnels), and the commands the gateway orders are read off NATS. tunnel-manager.test.ts
// drives the real one through this API.
describe('the tunnels API', () => {
  let sys: TestSystem;
  let nc: NatsConnection;
  let commands: SubjectWatch;
  let node: AppNode;
  let tenantId: string;
  let otherKey: string;
  let otherTenantId: string;
  let responder: Subscription | undefined;
  /** What the stand-in tunnel-manager holds, and the questions it was asked. */
  let held: Tunnel[] = [];
  const asked: Array<{ tenantId: string; tunnelId?: string }> = [];
  /** A stand-in that ignores the tenant asked for: the gateway must still show only the caller's. */
  let careless = false;

  const spec = (over: Partial<TunnelSpec> = {}): TunnelSpec => ({ name: 'web', nodeId: node.nodeId, port: 8000, paths: [{ kind: 'wireguard' }, { kind: 'ssh' }], ...over });
  const orderCount = async (key?: string) => (await sys.http('GET', '/v1/orders?limit=200', key ? { key } : {})).body.orders.length;
  const tunnelCommands = () => commands.seen.filter((m) => m.subject.startsWith('tunnel.cmd.'));

  function standIn() {
    responder = nc.subscribe('tunnel.req.list', {
      callback: (err, msg) => {
        if (err) return;
        const q = msg.json<{ tenantId: string; tunnelId?: string }>();
        asked.push(q);
        const tunnels = held.filter((t) => (careless || t.tenantId === q.tenantId) && (q.tunnelId === undefined || t.tunnelId === q.tunnelId));
        msg.respond(JSON.stringify({ tunnels }));
      },
    });
  }

  beforeAll(async () => {
    sys = await startTestSystem({ services: ['api-gateway', 'exit-node-manager'] });
    nc = await sys.natsClient();
    commands = watchSubjects(nc, ['tunnel.cmd.open', 'tunnel.cmd.close', 'tunnel.cmd.rotate']);
    node = await createAppPool(sys, nc, 'tunneled');
    tenantId = node.tenantId;
    const other = await sys.http('POST', '/v1/tenants', { body: { name: 'other' } });
    expect(other.status).toBe(201);
    otherKey = other.body.apiKey;
    otherTenantId = other.body.id;
  }, 90_000);
  afterAll(async () => {
    responder?.unsubscribe();
    await sys?.close();
  });

  it('answers 503 naming tunnel-manager while it is away, and orders nothing', async () => {
    const before = await orderCount();
    for (const [method, path, body] of [
      ['GET', '/v1/tunnels', undefined],
      ['GET', `/v1/tunnels/${randomUUID()}`, undefined],
      ['POST', '/v1/tunnels', spec()],
    ] as const) {
      const res = await sys.http(method, path, body ? { body } : {});
      expect(res.status, `${method} ${path}`).toBe(503);
      expect(res.body, `${method} ${path}`).toEqual({ error: 'unavailable', message: 'tunnel-manager is unavailable; retry shortly' });
      expect(res.headers.get('retry-after')).toBe('2');
    }
    expect(await orderCount()).toBe(before);
    standIn();
  });

  it('refuses a bad spec with 400 naming the field, before anything is ordered', async () => {
    const before = await orderCount();
    const cases: Array<[string, unknown, string, RegExp]> = [
      ['no paths', spec({ paths: [] }), 'paths', /fewer than 1 items/],
      ['four paths', spec({ paths: [{ kind: 'wireguard' }, { kind: 'ssh' }, { kind: 'direct', address: '10.0.0.1' }, { kind: 'ssh' }] }), 'paths', /more than 3 items/],
      ['port 0', spec({ port: 0 }), 'port', />= 1/],
      ['no name', { nodeId: node.nodeId, port: 8000, paths: [{ kind: 'ssh' }] }, 'name', /required/],
      ['a node id that is no UUID', spec({ nodeId: 'web-0' }), 'nodeId', /./],
      ['an unknown field', { ...spec(), via: 'edge' }, 'via', /unknown field/],
      ['an unknown field on a path', spec({ paths: [{ kind: 'ssh', priority: 1 } as never] }), 'paths.0.priority', /unknown field/],
      ['a kind twice', spec({ paths: [{ kind: 'ssh' }, { kind: 'ssh' }] }), 'paths.1.kind', /^ssh is already paths\.0: each kind at most once$/],
      ['direct without an address', spec({ paths: [{ kind: 'wireguard' }, { kind: 'direct' }] }), 'paths.1.address', /^required on a direct path/],
      ['direct at a name', spec({ paths: [{ kind: 'direct', address: 'node.lan' }] }), 'paths.0.address', /^"node.lan" is not an IPv4 address/],
      ['direct at IPv6', spec({ paths: [{ kind: 'direct', address: 'fd00::7' }] }), 'paths.0.address', /is not an IPv4 address/],
      ['an address on ssh', spec({ paths: [{ kind: 'ssh', address: '10.0.0.1' }] }), 'paths.0.address', /^not allowed on the ssh path/],
      ['an address on wireguard', spec({ paths: [{ kind: 'wireguard', address: '10.0.0.1' }] }), 'paths.0.address', /^not allowed on the wireguard path/],
    ];
    for (const [label, body, field, message] of cases) {
      const res = await sys.http('POST', '/v1/tunnels', { body });
      expect(res.status, label).toBe(400);
      expect(res.body.error, label).toBe('bad_request');
      expect(res.body.issues, label).toEqual([{ field, message: expect.stringMatching(message) }]);
    }
    // A kind outside the union: the schema says so on the field, perhaps more than once.
    const unknownKind = await sys.http('POST', '/v1/tunnels', { body: spec({ paths: [{ kind: 'tailscale' as never }] }) });
    expect(unknownKind.status).toBe(400);
    expect(new Set(unknownKind.body.issues.map((i: { field: string }) => i.field))).toEqual(new Set(['paths.0.kind']));
    expect(await orderCount()).toBe(before);
    expect(tunnelCommands()).toEqual([]);
    // Spec errors are refused before tunnel-manager is asked anything.
    expect(asked).toEqual([]);
  });

  it("answers 404 naming nodeId for a node that is not the caller's, and 400 naming port for one it does not publish", async () => {
    const before = await orderCount();
    const unknown = randomUUID();
    const missing = await sys.http('POST', '/v1/tunnels', { body: spec({ nodeId: unknown }) });
    expect(missing.status).toBe(404);
    expect(missing.body).toEqual({ error: 'not_found', message: `nodeId: no node ${unknown}`, issues: [{ field: 'nodeId', message: `no node ${unknown}` }] });
    // The admin tenant's node, asked for with the other tenant's key: the same answer as a missing one.
    const foreign = await sys.http('POST', '/v1/tunnels', { key: otherKey, body: spec() });
    expect(foreign.status).toBe(404);
    expect(foreign.body.issues).toEqual([{ field: 'nodeId', message: `no node ${node.nodeId}` }]);

    const published = node.ports.map((p) => p.containerPort);
    expect(published).toEqual([8000]);
    const port = await sys.http('POST', '/v1/tunnels', { body: spec({ port: 8001 }) });
    expect(port.status).toBe(400);
    expect(port.body.issues).toEqual([{ field: 'port', message: `8001 is not a published port of node ${node.nodeId}: it publishes 8000` }]);
    // The host port the node is reached at on its host is not a port of the node.
    const hostPort = await sys.http('POST', '/v1/tunnels', { body: spec({ port: node.hostPort }) });
    expect(hostPort.status).toBe(400);
    expect(hostPort.body.issues[0].field).toBe('port');

    expect(await orderCount()).toBe(before);
    expect(await orderCount(otherKey)).toBe(0);
    expect(tunnelCommands()).toEqual([]);
  });

  it("answers 409 for a name the tenant's tunnels hold; another tenant's names are free", async () => {
    held = [aTunnel(tenantId, node.nodeId, 'web'), aTunnel(otherTenantId, randomUUID(), 'shared')];
    const before = await orderCount();
    asked.length = 0;
    const taken = await sys.http('POST', '/v1/tunnels', { body: spec({ name: 'web', paths: [{ kind: 'ssh' }] }) });
    expect(taken.status).toBe(409);
    expect(taken.body).toEqual({ error: 'conflict', message: `name: the tunnel ${held[0]!.tunnelId} is named "web"`, issues: [{ field: 'name', message: 'taken' }] });
    expect(asked).toEqual([{ tenantId }]);
    expect(await orderCount()).toBe(before);

    const free = await sys.http('POST', '/v1/tunnels', { body: spec({ name: 'shared' }) });
    expect(free.status).toBe(202);
    await commands.next((m) => m.subject === 'tunnel.cmd.open' && m.data.orderId === free.body.id, 5_000);
  });

  it('places a tunnel.open order with a new tunnel id, whose command carries the spec', async () => {
    const body = spec({ name: 'api', paths: [{ kind: 'wireguard' }, { kind: 'ssh' }, { kind: 'direct', address: '192.168.1.20' }], fall: 2, holdDownMs: 5_000 });
    const res = await sys.http('POST', '/v1/tunnels', { body });
    expect(res.status).toBe(202);
    expect(res.headers.get('location')).toBe(`/v1/orders/${res.body.id}`);
    const tunnelId = res.body.tunnelId;
    expect(tunnelId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(res.body).toMatchObject({ type: 'tunnel.open', status: 'accepted', request: { type: 'tunnel.open', spec: body }, result: { tunnelId }, reason: null });

    const command = await commands.next((m) => m.subject === 'tunnel.cmd.open' && m.data.orderId === res.body.id, 5_000);
    expect(command.data).toEqual({ orderId: res.body.id, tenantId, tunnelId, spec: body });
    expect((await sys.http('GET', `/v1/orders/${res.body.id}`)).body).toMatchObject({ type: 'tunnel.open', result: { tunnelId } });
  });

  it("takes an app pool's port; answers 404 naming poolId for another tenant's pool, 400 for a direct path to a pool or a port it does not publish", async () => {
    const before = await orderCount();
    const pooled = (over: Partial<TunnelSpec> = {}) => spec({ nodeId: undefined, poolId: node.poolId, name: 'pooled', ...over });
    const foreign = await sys.http('POST', '/v1/tunnels', { key: otherKey, body: pooled() });
    expect(foreign.status).toBe(404);
    expect(foreign.body.issues).toEqual([{ field: 'poolId', message: `no pool ${node.poolId}` }]);
    const direct = await sys.http('POST', '/v1/tunnels', { body: pooled({ paths: [{ kind: 'ssh' }, { kind: 'direct', address: '127.0.0.1' }] }) });
    expect(direct.status).toBe(400);
    expect(direct.body.issues).toEqual([{ field: 'paths.1.kind', message: "a direct path reaches one node's host; a pool's tunnel takes wireguard or ssh" }]);
    const both = await sys.http('POST', '/v1/tunnels', { body: pooled({ nodeId: node.nodeId }) });
    expect(both.status).toBe(400);
    expect(both.body.issues).toEqual([{ field: 'poolId', message: 'a tunnel names a node or a pool, not both' }]);
    const port = await sys.http('POST', '/v1/tunnels', { body: pooled({ port: 8001 }) });
    expect(port.status).toBe(400);
    expect(port.body.issues).toEqual([{ field: 'port', message: `8001 is not a published port of pool ${node.poolId}: it publishes 8000` }]);
    expect(await orderCount()).toBe(before);

    const res = await sys.http('POST', '/v1/tunnels', { body: pooled() });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const command = await commands.next((m) => m.subject === 'tunnel.cmd.open' && m.data.orderId === res.body.id, 5_000);
    expect(command.data.spec).toEqual(pooled());
  });

  it('answers a retry with the same Idempotency-Key with the first order, and opens once', async () => {
    const headers = { 'idempotency-key': `tunnel-${randomUUID()}` };
    const body = spec({ name: 'once' });
    const first = await sys.http('POST', '/v1/tunnels', { body, headers });
    expect(first.status).toBe(202);
    const again = await sys.http('POST', '/v1/tunnels', { body, headers });
    expect(again.status).toBe(202);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body).toEqual(first.body);
    await commands.next((m) => m.subject === 'tunnel.cmd.open' && m.data.orderId === first.body.id, 5_000);
    expect(commands.seen.filter((m) => m.subject === 'tunnel.cmd.open' && m.data.spec.name === 'once')).toHaveLength(1);
  });

  it("lists and shows the tenant's tunnels as tunnel-manager holds them", async () => {
    const mine = aTunnel(tenantId, node.nodeId, 'web');
    held = [mine, aTunnel(otherTenantId, randomUUID(), 'theirs')];
    asked.length = 0;
    const list = await sys.http('GET', '/v1/tunnels');
    expect(list.status).toBe(200);
    expect(list.body).toEqual({ tunnels: [mine] });
    const one = await sys.http('GET', `/v1/tunnels/${mine.tunnelId}`);
    expect(one.status).toBe(200);
    expect(one.body).toEqual(mine);
    expect(asked).toEqual([{ tenantId }, { tenantId, tunnelId: mine.tunnelId }]);

    const unknown = randomUUID();
    expect((await sys.http('GET', `/v1/tunnels/${unknown}`)).body).toEqual({ error: 'not_found', message: `no tunnel ${unknown}` });
    expect((await sys.http('GET', '/v1/tunnels/web')).body.issues[0].field).toBe('params.id');
  });

  it('closes and rotates a tunnel of the tenant through orders whose commands name it', async () => {
    const mine = aTunnel(tenantId, node.nodeId, 'web');
    held = [mine];
    const closed = await sys.http('DELETE', `/v1/tunnels/${mine.tunnelId}`);
    expect(closed.status).toBe(202);
    expect(closed.headers.get('location')).toBe(`/v1/orders/${closed.body.id}`);
    expect(closed.body).toMatchObject({
      type: 'tunnel.close',
      status: 'accepted',
      request: { type: 'tunnel.close', tunnelId: mine.tunnelId },
      result: { tunnelId: mine.tunnelId },
    });
    const close = await commands.next((m) => m.subject === 'tunnel.cmd.close' && m.data.orderId === closed.body.id, 5_000);
    expect(close.data).toEqual({ orderId: closed.body.id, tenantId, tunnelId: mine.tunnelId });

    const rotated = await sys.http('POST', `/v1/tunnels/${mine.tunnelId}/rotate`);
    expect(rotated.status).toBe(202);
    expect(rotated.body).toMatchObject({ type: 'tunnel.rotate', status: 'accepted', result: { tunnelId: mine.tunnelId } });
    const rotate = await commands.next((m) => m.subject === 'tunnel.cmd.rotate' && m.data.orderId === rotated.body.id, 5_000);
    expect(rotate.data).toEqual({ orderId: rotated.body.id, tenantId, tunnelId: mine.tunnelId });

    const unknown = randomUUID();
    for (const [method, path] of [
      ['DELETE', `/v1/tunnels/${unknown}`],
      ['POST', `/v1/tunnels/${unknown}/rotate`],
    ] as const) {
      const res = await sys.http(method, path);
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(res.body).toEqual({ error: 'not_found', message: `no tunnel ${unknown}` });
    }
  });

  it("hides a tunnel from another tenant's key: 404 on GET, DELETE and rotate, and nothing ordered", async () => {
    const mine = aTunnel(tenantId, node.nodeId, 'web');
    held = [mine];
    const before = await orderCount();
    const commandsBefore = tunnelCommands().length;
    const check = async () => {
      for (const [method, path] of [
        ['GET', `/v1/tunnels/${mine.tunnelId}`],
        ['DELETE', `/v1/tunnels/${mine.tunnelId}`],
        ['POST', `/v1/tunnels/${mine.tunnelId}/rotate`],
      ] as const) {
        const res = await sys.http(method, path, { key: otherKey });
        expect(res.status, `${method} ${path}`).toBe(404);
        expect(res.body, `${method} ${path}`).toEqual({ error: 'not_found', message: `no tunnel ${mine.tunnelId}` });
      }
      expect((await sys.http('GET', '/v1/tunnels', { key: otherKey })).body).toEqual({ tunnels: [] });
    };
    asked.length = 0;
    await check();
    // The gateway asks for the caller's tenant only...
    expect(asked.every((q) => q.tenantId === otherTenantId)).toBe(true);
    // ...and shows nothing of another tenant even when the answer holds it.
    careless = true;
    try {
      await check();
    } finally {
      careless = false;
    }
    expect(await orderCount()).toBe(before);
    expect(await orderCount(otherKey)).toBe(0);
    expect(tunnelCommands()).toHaveLength(commandsBefore);
  });

  it('describes every route in the OpenAPI document with its scope', async () => {
    const doc = (await sys.http('GET', '/openapi.json', { key: null })).body;
    const scopes = Object.entries(doc.paths as Record<string, Record<string, { 'x-required-scope'?: string }>>)
      .filter(([path]) => path.startsWith('/v1/tunnels'))
      .flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => `${method.toUpperCase()} ${path} ${op['x-required-scope']}`))
      .sort();
    expect(scopes).toEqual([
      'DELETE /v1/tunnels/{id} pools:write',
      'GET /v1/tunnels read',
      'GET /v1/tunnels/{id} read',
      'POST /v1/tunnels pools:write',
      'POST /v1/tunnels/{id}/rotate pools:write',
    ]);
    expect(Object.keys(doc.paths['/v1/tunnels'].post.responses).sort()).toEqual(['202', '400', '404', '409', '422', '503']);
  });

  it("puts tunnel-manager's events on the node's activity timeline", async () => {
    const tunnel = { tenantId, tunnelId: randomUUID(), nodeId: node.nodeId, name: 'web' };
    const bus = createBus(nc, 'tunnel-manager');
    await bus.publish('tunnel.evt.opened', { ...tunnel, endpoint: { host: 'edge.test', port: 40001 }, at: '2026-12-07T10:00:00.000Z' });
    await bus.publish('tunnel.evt.down', { ...tunnel, path: 'wireguard', reason: 'wireguard probe failed 3× (ETIMEDOUT)', at: '2026-12-07T10:00:01.000Z' });
    await bus.publish('tunnel.evt.failover', {
      ...tunnel,
      from: 'wireguard',
      to: 'ssh',
      reason: 'switched to ssh: wireguard probe failed 3× (ETIMEDOUT)',
      at: '2026-12-07T10:00:02.000Z',
    });
    await bus.publish('tunnel.evt.rotated', { ...tunnel, paths: ['wireguard', 'ssh'], reason: 'asked for', at: '2026-12-07T10:00:03.000Z' });
    // A repeat of an event (a redelivery, a producer sending it twice) adds no second entry.
    await bus.publish('tunnel.evt.rotated', { ...tunnel, paths: ['wireguard', 'ssh'], reason: 'asked for', at: '2026-12-07T10:00:03.000Z' });
    // Published last and waited for, so the repeat has been handled before the count.
    await bus.publish('tunnel.evt.closed', { ...tunnel, endpoint: null, reason: 'closed by its owner', at: '2026-12-07T10:00:04.000Z' });
    await eventually(
      () => sys.http('GET', `/v1/activity?nodeId=${node.nodeId}&kind=tunnel_closed`),
      (r) => r.status === 200 && r.body.items.length === 1,
      15_000,
      'the closing entry',
    );
    const kinds = 'tunnel_opened,path_down,path_switched,keys_rotated';
    const page = await sys.http('GET', `/v1/activity?nodeId=${node.nodeId}&kind=${kinds}`);
    expect(page.body.items.map((e: { kind: string; message: string; poolId: string | null }) => [e.kind, e.message, e.poolId])).toEqual([
      ['keys_rotated', 'keys rotated: wireguard, ssh', null],
      ['path_switched', 'switched to ssh: wireguard probe failed 3× (ETIMEDOUT)', null],
      ['path_down', 'wireguard down: wireguard probe failed 3× (ETIMEDOUT)', null],
      ['tunnel_opened', 'tunnel web open at edge.test:40001', null],
    ]);
    expect(page.body.items[0].details).toEqual({ tunnelId: tunnel.tunnelId, name: 'web', paths: ['wireguard', 'ssh'], reason: 'asked for' });
    expect((await sys.http('GET', `/v1/activity?nodeId=${node.nodeId}&kind=${kinds}`, { key: otherKey })).body.items).toEqual([]);
  });
});
