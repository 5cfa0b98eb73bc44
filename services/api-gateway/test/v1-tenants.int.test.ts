import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { ADMIN_KEY, startDatabaseApp, type DatabaseApp } from './database-app.js';

// Integration: a real Postgres database (TEST_DATABASE_URL), no NATS.

describe('/v1/tenants against the database', () => {
  let sys: DatabaseApp;
  beforeAll(async () => {
    sys = await startDatabaseApp();
  });
  afterAll(async () => {
    await sys?.close();
  });

  const uniqueName = () => `tenant-${randomBytes(4).toString('hex')}`;
  const create = (key: string | undefined, payload: unknown) =>
    sys.app.inject({ method: 'POST', url: '/v1/tenants', headers: key ? sys.bearer(key) : {}, payload: payload as object });
  const tenantsNamed = (name: string) => sys.database.query('select id from tenants where name = $1', [name]);

  it('lets an admin create a tenant, whose new member key opens its own empty account', async () => {
    const name = uniqueName();
    const res = await create(ADMIN_KEY, { name });
    expect(res.statusCode).toBe(201);
    const body = res.json();
    expect(body).toEqual({ id: expect.any(String), name, apiKey: expect.stringMatching(/^sy_[A-Za-z0-9_-]{32}$/) });
    expect(await tenantsNamed(name)).toEqual([{ id: body.id }]);
    const keys = await sys.database.query('select role, key_hash from api_keys where tenant_id = $1', [body.id]);
    expect(keys).toEqual([{ role: 'member', key_hash: expect.not.stringContaining(body.apiKey) }]);
    const orders = await sys.app.inject({ method: 'GET', url: '/v1/orders', headers: sys.bearer(body.apiKey) });
    expect(orders.statusCode).toBe(200);
    expect(orders.json()).toEqual({ orders: [] });
  });

  it('refuses a member key with a 403 and creates nothing', async () => {
    const member = await sys.newTenant();
    const name = uniqueName();
    const res = await create(member.key, { name });
    expect(res.statusCode).toBe(403);
    expect(res.json()).toMatchObject({ error: 'forbidden', issues: [{ field: 'scope', message: expect.stringContaining('requires "admin"') }] });
    expect(await tenantsNamed(name)).toEqual([]);
  });

  it('asks for a key: none or an unknown one is a 401', async () => {
    for (const key of [undefined, 'sy_not-a-key']) {
      const name = uniqueName();
      const res = await create(key, { name });
      expect(res.statusCode).toBe(401);
      expect(res.json().error).toBe('unauthorized');
      expect(await tenantsNamed(name)).toEqual([]);
    }
  });

  it('answers 409 for a name already taken', async () => {
    const name = uniqueName();
    expect((await create(ADMIN_KEY, { name })).statusCode).toBe(201);
    const again = await create(ADMIN_KEY, { name });
    expect(again.statusCode).toBe(409);
    expect(again.json()).toEqual({ error: 'conflict', message: `a tenant named "${name}" already exists` });
    expect(await tenantsNamed(name)).toHaveLength(1);
  });

  it('names the field at fault in a 400', async () => {
    const cases: Array<[unknown, string]> = [
      [{}, 'name'],
      [{ name: 'Not A Name!' }, 'name'],
      [{ name: uniqueName(), plan: 'gold' }, 'plan'],
    ];
    for (const [payload, field] of cases) {
      const res = await create(ADMIN_KEY, payload);
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      expect(res.json(), JSON.stringify(payload)).toMatchObject({ error: 'bad_request', issues: [{ field, message: expect.any(String) }] });
    }
  });
});
