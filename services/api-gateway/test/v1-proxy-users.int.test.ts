import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { proxyUserSnapshot } from '../src/proxy-users.js';
import { startDatabaseApp, type DatabaseApp } from './database-app.js';

// Integration: a real Postgres database (TEST_DATABASE_URL), no NATS. The load balancer's side
// is in tests/integration/proxy-users.test.ts.

describe('/v1/proxy-users against the database', () => {
  let sys: DatabaseApp;
  beforeAll(async () => {
    sys = await startDatabaseApp();
  });
  afterAll(async () => {
    await sys?.close();
  });

  const create = (key: string, payload: unknown) => sys.app.inject({ method: 'POST', url: '/v1/proxy-users', headers: sys.bearer(key), payload: payload as object });
  const list = (key: string) => sys.app.inject({ method: 'GET', url: '/v1/proxy-users', headers: sys.bearer(key) });
  const revoke = (key: string, id: string) => sys.app.inject({ method: 'DELETE', url: `/v1/proxy-users/${id}`, headers: sys.bearer(key) });
  const outbox = (tenantId: string) => sys.database.query<{ subject: string; payload: any }>('select subject, payload from outbox where tenant_id = $1 order by seq', [tenantId]);

  it('answers the password once; the list, the table and the outbox never hold it', async () => {
    const t = await sys.newTenant();
    const res = await create(t.key, { name: 'alice' });
    expect(res.statusCode, res.body).toBe(201);
    const body = res.json();
    expect(body).toEqual({ id: expect.any(String), name: 'alice', createdAt: expect.any(String), password: expect.stringMatching(/^pu_/) });
    const listed = await list(t.key);
    expect(listed.json()).toEqual({ users: [{ id: body.id, name: 'alice', createdAt: body.createdAt }] });
    expect(listed.body).not.toContain(body.password);
    const rows = await sys.database.query('select * from proxy_users where tenant_id = $1', [t.id]);
    expect(JSON.stringify(rows)).not.toContain(body.password);
    const events = await outbox(t.id);
    expect(events.map((e) => e.subject)).toEqual(['proxyuser.evt.created']);
    expect(events[0]!.payload).toMatchObject({ tenantId: t.id, userId: body.id, name: 'alice', hash: { algorithm: 'scrypt' } });
    expect(JSON.stringify(events)).not.toContain(body.password);
    expect(sys.placed()).toBeGreaterThan(0);
  });

  it('keeps no password for an Idempotency-Key retry without SECRETS_KEY: the retry learns it succeeded', async () => {
    // This app has no SECRETS_KEY (tests/integration/idempotency.test.ts has the sealed replay).
    const t = await sys.newTenant();
    const post = () => sys.app.inject({ method: 'POST', url: '/v1/proxy-users', headers: { ...sys.bearer(t.key), 'idempotency-key': 'pu-1' }, payload: { name: 'erin' } });
    const first = await post();
    expect(first.statusCode).toBe(201);
    const again = await post();
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({ error: 'idempotency_response_withheld', issues: [{ field: 'headers.idempotency-key', message: 'the first answer was not kept' }] });
    expect((await list(t.key)).json().users).toHaveLength(1);
    const records = await sys.database.query('select * from idempotency_keys where tenant_id = $1', [t.id]);
    expect(records).toEqual([expect.objectContaining({ state: 'done', response_status: 201, response_body: null })]);
    expect(JSON.stringify(records)).not.toContain(first.json().password);
  });

  it('refuses a bad or taken name with a 4xx naming the field', async () => {
    const t = await sys.newTenant();
    for (const name of ['shop-1', 'country', 'Alice', '']) {
      const res = await create(t.key, { name });
      expect(res.statusCode, name).toBe(400);
      expect(res.json().issues, name).toEqual([{ field: 'name', message: expect.any(String) }]);
    }
    const missing = await create(t.key, {});
    expect(missing.statusCode).toBe(400);
    expect(missing.json().issues).toEqual([{ field: 'name', message: 'required' }]);
    expect((await create(t.key, { name: 'bob' })).statusCode).toBe(201);
    const again = await create(t.key, { name: 'bob' });
    expect(again.statusCode).toBe(409);
    expect(again.json().issues).toEqual([{ field: 'name', message: 'taken' }]);
    // Unique per tenant: another tenant may use the name.
    const other = await sys.newTenant();
    expect((await create(other.key, { name: 'bob' })).statusCode).toBe(201);
  });

  it("a member cannot see, revoke or count another tenant's users (404, as for a user that does not exist)", async () => {
    const a = await sys.newTenant('a');
    const b = await sys.newTenant('b');
    const alice = (await create(a.key, { name: 'alice' })).json();
    expect((await list(b.key)).json()).toEqual({ users: [] });
    const attack = await revoke(b.key, alice.id);
    expect(attack.statusCode).toBe(404);
    expect(attack.json()).toEqual({ error: 'not_found', message: `no proxy user ${alice.id}` });
    expect((await list(a.key)).json().users.map((u: { id: string }) => u.id)).toEqual([alice.id]);
    expect((await outbox(a.id)).map((e) => e.subject)).toEqual(['proxyuser.evt.created']);
  });

  it('revokes: the user leaves the list, the event carries no hash, and the name can be taken again', async () => {
    const t = await sys.newTenant();
    const alice = (await create(t.key, { name: 'alice' })).json();
    const res = await revoke(t.key, alice.id);
    expect(res.statusCode).toBe(204);
    expect((await list(t.key)).json()).toEqual({ users: [] });
    expect((await revoke(t.key, alice.id)).statusCode).toBe(404);
    const events = await outbox(t.id);
    expect(events.map((e) => e.subject)).toEqual(['proxyuser.evt.created', 'proxyuser.evt.revoked']);
    expect(events[1]!.payload).toEqual({ tenantId: t.id, userId: alice.id, name: 'alice', at: expect.any(String) });
    expect((await create(t.key, { name: 'alice' })).statusCode).toBe(201);
  });

  it('stops at the per-tenant limit with a 403 that names it; a revocation makes room', async () => {
    const t = await sys.newTenant();
    const made = await Promise.all(Array.from({ length: 20 }, (_, i) => create(t.key, { name: `u${i}` })));
    expect(made.map((r) => r.statusCode)).toEqual(Array(20).fill(201));
    const over = await create(t.key, { name: 'u20' });
    expect(over.statusCode).toBe(403);
    expect(over.json()).toEqual({ error: 'limit_reached', message: 'a tenant may have at most 20 proxy users (PROXY_USERS_PER_TENANT); revoke one first' });
    expect((await list(t.key)).json().users).toHaveLength(20);
    expect((await revoke(t.key, made[0]!.json().id)).statusCode).toBe(204);
    expect((await create(t.key, { name: 'u20' })).statusCode).toBe(201);
  });

  it('holds the limit when creations race', async () => {
    const t = await sys.newTenant();
    const made = await Promise.all(Array.from({ length: 24 }, (_, i) => create(t.key, { name: `r${i}` })));
    expect(made.filter((r) => r.statusCode === 201)).toHaveLength(20);
    expect(made.filter((r) => r.statusCode === 403)).toHaveLength(4);
  });

  it('are in the OpenAPI document, with a response schema per status', async () => {
    const { paths } = (await sys.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    // 409 and 422 are also the Idempotency-Key's answers (in flight, used for another request).
    expect(Object.keys(paths['/v1/proxy-users'].post.responses).sort()).toEqual(['201', '400', '403', '409', '422']);
    expect(paths['/v1/proxy-users'].post.parameters).toContainEqual(expect.objectContaining({ in: 'header', name: 'idempotency-key', required: false }));
    expect(paths['/v1/proxy-users'].get.responses['200']).toBeDefined();
    expect(Object.keys(paths['/v1/proxy-users/{id}'].delete.responses).sort()).toEqual(['204', '404']);
  });

  it('serves the snapshot a page at a time, live users only, with their hashes', async () => {
    const t = await sys.newTenant();
    const made = await Promise.all(['s1', 's2', 's3'].map(async (name) => (await create(t.key, { name })).json()));
    expect((await revoke(t.key, made[0]!.id)).statusCode).toBe(204);
    const seen: Array<{ userId: string; tenantId: string; hash: { algorithm: string } }> = [];
    let after: string | undefined;
    for (let page = 0; page < 100; page++) {
      const reply = await proxyUserSnapshot(sys.db, after ? { after } : {}, 2);
      expect(reply.users.length).toBeLessThanOrEqual(2);
      seen.push(...reply.users);
      if (!reply.more) break;
      after = reply.users.at(-1)!.userId;
    }
    const mine = seen.filter((u) => u.tenantId === t.id);
    expect(mine.map((u) => u.userId).sort()).toEqual([made[1]!.id, made[2]!.id].sort());
    expect(mine.every((u) => u.hash.algorithm === 'scrypt')).toBe(true);
    expect(new Set(seen.map((u) => u.userId)).size).toBe(seen.length);
    expect(JSON.stringify(seen)).not.toContain(made[1]!.password);
  });
});
