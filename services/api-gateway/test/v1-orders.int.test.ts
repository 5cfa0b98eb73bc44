import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { placeOrder } from '../src/orders/repository.js';
import { ADMIN_KEY, startDatabaseApp, type DatabaseApp } from './database-app.js';

// Integration: a real Postgres database (TEST_DATABASE_URL), no NATS.

const pool = (name: string) => ({ type: 'pool.create', pool: { name, kind: 'exit', country: 'jp', nodes: { min: 1, max: 2 } } });

describe('/v1/orders against the database', () => {
  let sys: DatabaseApp;
  beforeAll(async () => {
    sys = await startDatabaseApp();
  });
  afterAll(async () => {
    await sys?.close();
  });

  const post = (key: string | undefined, payload: unknown, headers: Record<string, string> = {}) =>
    sys.app.inject({ method: 'POST', url: '/v1/orders', headers: { ...(key ? sys.bearer(key) : {}), ...headers }, payload: payload as object });
  const get = (key: string | undefined, url: string) => sys.app.inject({ method: 'GET', url, headers: key ? sys.bearer(key) : {} });
  const outboxOf = (tenantId: string) =>
    sys.database.query<{ subject: string; payload: Record<string, unknown> }>('select subject, payload from outbox where tenant_id = $1 order by seq', [tenantId]);
  const ordersOf = (tenantId: string) => sys.database.query<{ id: string }>('select id from orders where tenant_id = $1', [tenantId]);

  it('stores an accepted order with its command, and says where to follow it', async () => {
    const t = await sys.newTenant();
    const before = sys.placed();
    const res = await post(t.key, pool('tokyo'));
    expect(res.statusCode).toBe(202);
    const order = res.json();
    expect(order).toMatchObject({ type: 'pool.create', status: 'accepted', request: pool('tokyo'), result: { poolId: expect.any(String) }, reason: null });
    expect(res.headers['location']).toBe(`/v1/orders/${order.id}`);
    expect(res.headers['idempotent-replayed']).toBeUndefined();
    expect(sys.placed()).toBe(before + 1);
    expect(await outboxOf(t.id)).toEqual([
      {
        subject: 'pool.cmd.create',
        payload: expect.objectContaining({ orderId: order.id, tenantId: t.id, poolId: order.result.poolId, spec: expect.objectContaining({ country: 'JP' }) }),
      },
    ]);
    expect((await get(t.key, `/v1/orders/${order.id}`)).json()).toEqual(order);
  });

  it('returns the first order for a retry with the same Idempotency-Key, however the body is written', async () => {
    const t = await sys.newTenant();
    const headers = { 'idempotency-key': 'retry-1' };
    const first = await post(t.key, pool('osaka'), headers);
    expect(first.statusCode).toBe(202);
    const placedAfterFirst = sys.placed();
    // The same request with its keys in another order and other whitespace.
    const reordered = '{ "pool": {"nodes": {"max": 2, "min": 1}, "country": "jp", "kind": "exit", "name": "osaka"},\n "type": "pool.create" }';
    for (const payload of [pool('osaka'), reordered]) {
      const again = await sys.app.inject({ method: 'POST', url: '/v1/orders', headers: { ...sys.bearer(t.key), ...headers, 'content-type': 'application/json' }, payload });
      expect(again.statusCode).toBe(202);
      expect(again.headers['idempotent-replayed']).toBe('true');
      expect(again.headers['location']).toBe(first.headers['location']);
      expect(again.json()).toEqual(first.json());
    }
    expect(sys.placed()).toBe(placedAfterFirst);
    expect(await ordersOf(t.id)).toHaveLength(1);
    expect(await outboxOf(t.id)).toHaveLength(1);
  });

  it('refuses the same Idempotency-Key with a different request: 422 naming the header, nothing stored', async () => {
    const t = await sys.newTenant();
    const headers = { 'idempotency-key': 'retry-2' };
    expect((await post(t.key, pool('nagoya'), headers)).statusCode).toBe(202);
    const other = await post(t.key, pool('kyoto'), headers);
    expect(other.statusCode).toBe(422);
    expect(other.json()).toEqual({
      error: 'idempotency_key_reused',
      message: 'Idempotency-Key "retry-2" was already used for a different request',
      issues: [{ field: 'headers.idempotency-key', message: 'already used for a different request' }],
    });
    expect(await ordersOf(t.id)).toHaveLength(1);
    expect(await outboxOf(t.id)).toHaveLength(1);
  });

  it('keeps Idempotency-Keys per tenant', async () => {
    const [a, b] = [await sys.newTenant(), await sys.newTenant()];
    const headers = { 'idempotency-key': 'shared-key' };
    const first = await post(a.key, pool('sapporo'), headers);
    const second = await post(b.key, pool('sendai'), headers);
    expect(second.statusCode).toBe(202);
    expect(second.headers['idempotent-replayed']).toBeUndefined();
    expect(second.json().id).not.toBe(first.json().id);
  });

  it('names the field at fault in a 400 and stores nothing', async () => {
    const t = await sys.newTenant();
    const cases: Array<[unknown, Record<string, string>, Array<{ field: string; message: string }>]> = [
      [{ type: 'pool.create' }, {}, [{ field: 'pool', message: 'required for a pool.create order' }]],
      [
        { type: 'pool.delete', poolId: '7d3c2a10-1111-4a2b-8c3d-0e9f8a7b6c5d', nodeId: '7d3c2a10-1111-4a2b-8c3d-0e9f8a7b6c5d' },
        {},
        [{ field: 'nodeId', message: 'not allowed in a pool.delete order' }],
      ],
      [{ type: 'pool.scale', poolId: '7d3c2a10-1111-4a2b-8c3d-0e9f8a7b6c5d', nodes: { min: 3, max: 2 } }, {}, [{ field: 'nodes.min', message: 'must not exceed nodes.max' }]],
      [{ type: 'node.add', country: 'xx' }, {}, [{ field: 'country', message: 'unknown country "xx" (expected an ISO 3166-1 alpha-2 code)' }]],
      [{ type: 'node.add' }, {}, [{ field: 'country', message: 'required for a node.add order' }]],
      [{ ...pool('ok'), colour: 'red' }, {}, [{ field: 'colour', message: expect.any(String) }]],
      [{ type: 'node.wake', nodeId: '7d3c2a10-1111-4a2b-8c3d-0e9f8a7b6c5d' }, {}, [{ field: 'type', message: expect.any(String) }]],
      [pool('ok'), { 'idempotency-key': 'has spaces' }, [{ field: 'headers.idempotency-key', message: expect.any(String) }]],
    ];
    for (const [payload, headers, issues] of cases) {
      const res = await post(t.key, payload, headers);
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      const body = res.json();
      expect(body.error).toBe('bad_request');
      // Only the fields at fault are named (a union may name its field more than once).
      expect(body.issues, JSON.stringify(payload)).toEqual(expect.arrayContaining(issues));
      expect(new Set(body.issues.map((i: { field: string }) => i.field))).toEqual(new Set(issues.map((i) => i.field)));
    }
    expect(await ordersOf(t.id)).toEqual([]);
    expect(await outboxOf(t.id)).toEqual([]);
  });

  it("spends none of a member's node-addition budget on an order its secrets get refused", async () => {
    // This app has no SECRETS_KEY: every order with secretEnv is a 503. Thirty-one of them
    // ask for one node each, more than the thirty a minute the budget holds.
    const t = await sys.newTenant();
    for (let i = 0; i < 31; i++) {
      const res = await post(t.key, { type: 'pool.create', pool: { name: `s${i}`, kind: 'exit', country: 'jp', nodes: { min: 1, max: 1 }, secretEnv: { TOKEN: 'x' } } });
      expect(res.statusCode).toBe(503);
      expect(res.body).not.toContain('"x"');
    }
    expect((await post(t.key, pool('plain'))).statusCode).toBe(202);
  });

  it('asks for a key: none or an unknown one is a 401', async () => {
    for (const key of [undefined, 'sy_not-a-key']) {
      const placing = await post(key, pool('nara'));
      expect(placing.statusCode).toBe(401);
      expect(placing.json().error).toBe('unauthorized');
      expect((await get(key, '/v1/orders')).statusCode).toBe(401);
    }
  });

  it("shows a tenant only its own orders: another tenant's is a 404, even to the admin", async () => {
    const [owner, stranger] = [await sys.newTenant(), await sys.newTenant()];
    const order = (await post(owner.key, pool('kobe'))).json();
    for (const key of [stranger.key, ADMIN_KEY]) {
      const res = await get(key, `/v1/orders/${order.id}`);
      expect(res.statusCode).toBe(404);
      expect(res.json()).toEqual({ error: 'not_found', message: `no order ${order.id}` });
      expect((await get(key, '/v1/orders')).json().orders.map((o: { id: string }) => o.id)).not.toContain(order.id);
    }
    expect((await get(owner.key, `/v1/orders/${order.id}`)).statusCode).toBe(200);
  });

  it('lists orders newest first, a page at a time', async () => {
    const t = await sys.newTenant();
    const ids: string[] = [];
    for (const name of ['a', 'b', 'c']) ids.push((await post(t.key, pool(name))).json().id);
    const all = (await get(t.key, '/v1/orders')).json().orders;
    expect(all.map((o: { id: string }) => o.id)).toEqual([...ids].reverse());
    const page = (await get(t.key, '/v1/orders?limit=2')).json().orders;
    expect(page).toEqual(all.slice(0, 2));
    const rest = (await get(t.key, `/v1/orders?before=${encodeURIComponent(page[1].createdAt)}`)).json().orders;
    expect(rest).toEqual(all.slice(2));
    const bad = await get(t.key, '/v1/orders?limit=0');
    expect(bad.statusCode).toBe(400);
    expect(bad.json().issues.map((i: { field: string }) => i.field)).toEqual(['query.limit']);
  });

  it("places an order inside the caller's transaction, so a rollback takes the order and its command", async () => {
    const t = await sys.newTenant();
    const rollback = new Error('rolled back on purpose');
    await expect(
      sys.db.transaction().execute(async (tx) => {
        const placed = await placeOrder(tx, t.id, { type: 'pool.delete', poolId: '7d3c2a10-1111-4a2b-8c3d-0e9f8a7b6c5d' });
        expect(placed).toMatchObject({ replayed: false });
        throw rollback;
      }),
    ).rejects.toBe(rollback);
    expect(await ordersOf(t.id)).toEqual([]);
    expect(await outboxOf(t.id)).toEqual([]);
  });
});
