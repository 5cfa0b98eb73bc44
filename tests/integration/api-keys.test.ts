import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes, randomUUID } from 'node:crypto';
import { eventually, startTestSystem, type TestSystem } from '@switchyard/testkit';

// API keys against a real gateway and Postgres: issue, list, expire, rotate with an overlap,
// revoke, last-used time, escalation refused, and the config key replaced by a restart.
describe('API keys', () => {
  let sys: TestSystem;
  let adminKey: string;
  let member: { id: string; key: string };
  let other: { id: string; key: string };

  const tenant = async (prefix: string) => {
    const res = await sys.http('POST', '/v1/tenants', { key: adminKey, body: { name: `${prefix}-${randomBytes(3).toString('hex')}` } });
    expect(res.status).toBe(201);
    return { id: res.body.id as string, key: res.body.apiKey as string };
  };
  const issue = async (key: string, body: Record<string, unknown>) => {
    const res = await sys.http('POST', '/v1/keys', { key, body });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body as { id: string; apiKey: string; [k: string]: unknown };
  };
  const orders = (key: string) => sys.http('GET', '/v1/orders', { key });
  const row = async (id: string) => (await sys.db.query<any>('select * from api_keys where id = $1', [id]))[0];

  beforeAll(async () => {
    sys = await startTestSystem();
    await sys.start('api-gateway');
    adminKey = sys.adminKey;
    member = await tenant('keys');
    other = await tenant('other');
  });
  afterAll(async () => {
    await sys?.close();
  });

  it("gives a new tenant's first key `write` and the default 90 days", async () => {
    const before = Date.now();
    const t = await tenant('first');
    const listed = await sys.http('GET', '/v1/keys', { key: t.key });
    expect(listed.status).toBe(200);
    expect(listed.body.keys).toHaveLength(1);
    const k = listed.body.keys[0];
    expect(k).toMatchObject({ tenantId: t.id, name: 'first key', scopes: ['write'], status: 'active', fromConfig: false, revokedAt: null, replacedBy: null });
    const ttl = Date.parse(k.expiresAt) - before;
    expect(ttl).toBeGreaterThanOrEqual(90 * 86_400_000 - 60_000);
    expect(ttl).toBeLessThanOrEqual(90 * 86_400_000 + 60_000);
  });

  it('issues a key whose secret is answered once; listings show its prefix and metadata only', async () => {
    const made = await issue(member.key, { name: 'ci', scopes: ['read', 'pools:write'] });
    expect(made.apiKey).toMatch(/^sy_[A-Za-z0-9_-]{32}$/);
    expect(made).toMatchObject({ name: 'ci', tenantId: member.id, scopes: ['read', 'pools:write'], prefix: made.apiKey.slice(0, 11), status: 'active', lastUsedAt: null });
    expect((await orders(made.apiKey)).status).toBe(200);

    const hash = (await row(made.id)).key_hash as string;
    for (const path of ['/v1/keys', '/v1/keys?all=true', `/v1/keys/${made.id}`]) {
      const res = await sys.http('GET', path, { key: member.key });
      expect(res.status, path).toBe(200);
      const text = JSON.stringify(res.body);
      expect(text, path).not.toContain(made.apiKey);
      expect(text, path).not.toContain(made.apiKey.slice(11));
      expect(text, path).not.toContain(hash);
      expect(text, path).not.toMatch(/"(apiKey|key|hash|keyHash|key_hash|secret)"/);
    }
    const one = await sys.http('GET', `/v1/keys/${made.id}`, { key: member.key });
    expect(Object.keys(one.body).sort()).toEqual(
      ['createdAt', 'createdBy', 'expiresAt', 'fromConfig', 'id', 'lastUsedAt', 'name', 'prefix', 'replacedBy', 'revokedAt', 'scopes', 'status', 'tenantId'].sort(),
    );
    // Made by the member's first key.
    expect(one.body.createdBy).toBe((await sys.http('GET', '/v1/keys', { key: member.key })).body.keys.find((k: any) => k.name === 'first key').id);
  });

  it('refuses an unknown scope, an empty set, and expiries outside (now, now + max] naming the field', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ name: 'x', scopes: ['everything'] }, 'scopes.0'],
      [{ name: 'x', scopes: [] }, 'scopes'],
      [{ name: 'x', scopes: ['read'], expiresAt: new Date(Date.now() - 1000).toISOString() }, 'expiresAt'],
      [{ name: 'x', scopes: ['read'], expiresAt: new Date(Date.now() + 366 * 86_400_000).toISOString() }, 'expiresAt'],
      [{ name: '', scopes: ['read'] }, 'name'],
    ];
    for (const [body, field] of cases) {
      const res = await sys.http('POST', '/v1/keys', { key: member.key, body });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(
        res.body.issues.map((i: any) => i.field),
        JSON.stringify(body),
      ).toContain(field);
    }
  });

  it('takes an expiry up to the maximum, and refuses an expired key with a 401 that says so', async () => {
    const at = new Date(Date.now() + 7 * 86_400_000);
    const made = await issue(member.key, { name: 'week', scopes: ['read'], expiresAt: at.toISOString() });
    expect(made.expiresAt).toBe(at.toISOString());
    expect((await orders(made.apiKey)).status).toBe(200);
    // The week passes.
    await sys.db.query(`update api_keys set expires_at = now() - interval '1 second' where id = $1`, [made.id]);
    const res = await orders(made.apiKey);
    expect(res.status).toBe(401);
    expect(res.body).toMatchObject({ error: 'unauthorized', message: expect.stringMatching(/^API key expired at \d{4}-/) });
    const shown = await sys.http('GET', `/v1/keys/${made.id}`, { key: member.key });
    expect(shown.body.status).toBe('expired');
    // Listed only when asked for dead keys too.
    expect((await sys.http('GET', '/v1/keys', { key: member.key })).body.keys.map((k: any) => k.id)).not.toContain(made.id);
    expect((await sys.http('GET', '/v1/keys?all=true', { key: member.key })).body.keys.map((k: any) => k.id)).toContain(made.id);
  });

  it('rotates: both keys work until the overlap ends, then the old one is a 401 naming its successor', async () => {
    const old = await issue(member.key, { name: 'deploy', scopes: ['read', 'proxy'] });
    const overlapUntil = new Date(Date.now() + 3000);
    const res = await sys.http('POST', `/v1/keys/${old.id}/rotate`, { key: member.key, body: { overlapUntil: overlapUntil.toISOString() } });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const { key: next, previous } = res.body;
    expect(next).toMatchObject({ name: 'deploy', scopes: ['read', 'proxy'], status: 'active', apiKey: expect.stringMatching(/^sy_/) });
    expect(next.id).not.toBe(old.id);
    expect(previous).toMatchObject({ id: old.id, replacedBy: next.id, expiresAt: overlapUntil.toISOString(), status: 'active' });
    expect((await orders(old.apiKey)).status).toBe(200);
    expect((await orders(next.apiKey)).status).toBe(200);

    const ended = await eventually(
      () => orders(old.apiKey),
      (r) => r.status !== 200,
      15_000,
      'old key refused after its overlap',
    );
    expect(ended.status).toBe(401);
    expect(ended.body.message).toContain(`rotated into key ${next.id}`);
    expect(Date.now()).toBeGreaterThanOrEqual(overlapUntil.getTime());
    expect((await orders(next.apiKey)).status).toBe(200);

    // One successor per key; a dead key is not rotated.
    const again = await sys.http('POST', `/v1/keys/${old.id}/rotate`, { key: member.key });
    expect(again.status).toBe(409);
    expect(again.body.issues).toEqual([{ field: 'id', message: 'already rotated' }]);
  });

  it('bounds the overlap and never extends a key past its own expiry', async () => {
    const old = await issue(member.key, { name: 'short', scopes: ['read'], expiresAt: new Date(Date.now() + 3_600_000).toISOString() });
    const tooLong = await sys.http('POST', `/v1/keys/${old.id}/rotate`, { key: member.key, body: { overlapUntil: new Date(Date.now() + 721 * 3_600_000).toISOString() } });
    expect(tooLong.status).toBe(400);
    expect(tooLong.body.issues[0]).toMatchObject({ field: 'overlapUntil', message: expect.stringContaining('API_KEY_MAX_OVERLAP_HOURS') });
    const past = await sys.http('POST', `/v1/keys/${old.id}/rotate`, { key: member.key, body: { overlapUntil: new Date(Date.now() - 60_000).toISOString() } });
    expect(past.status).toBe(400);
    // Asked for 48 h of overlap, the old key still ends when it would have: in an hour.
    const res = await sys.http('POST', `/v1/keys/${old.id}/rotate`, { key: member.key, body: { overlapUntil: new Date(Date.now() + 48 * 3_600_000).toISOString() } });
    expect(res.status).toBe(201);
    expect(res.body.previous.expiresAt).toBe(old.expiresAt);
  });

  it('revokes at once: the next call is a 401 saying revoked, and a second revoke keeps the first time', async () => {
    const made = await issue(member.key, { name: 'leaked', scopes: ['read'] });
    expect((await orders(made.apiKey)).status).toBe(200);
    const res = await sys.http('DELETE', `/v1/keys/${made.id}`, { key: member.key });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: made.id, status: 'revoked', revokedAt: expect.any(String) });
    const refused = await orders(made.apiKey);
    expect(refused.status).toBe(401);
    expect(refused.body.message).toBe(`API key revoked at ${res.body.revokedAt}`);
    const twice = await sys.http('DELETE', `/v1/keys/${made.id}`, { key: member.key });
    expect(twice.body.revokedAt).toBe(res.body.revokedAt);
    expect((await sys.http('POST', `/v1/keys/${made.id}/rotate`, { key: member.key })).status).toBe(409);
    // An unknown key says only that.
    const unknown = await orders(`sy_${randomBytes(24).toString('base64url')}`);
    expect(unknown.body).toEqual({ error: 'unauthorized', message: 'unknown API key' });
  });

  it('records the last use, but not on every request', async () => {
    const made = await issue(member.key, { name: 'used', scopes: ['read'] });
    expect((await row(made.id)).last_used_at).toBeNull();
    expect((await orders(made.apiKey)).status).toBe(200);
    const first = await eventually(
      () => row(made.id),
      (r) => r.last_used_at !== null,
      10_000,
      'last_used_at written',
    );
    const at = (first.last_used_at as Date).getTime();
    for (let i = 0; i < 5; i++) expect((await orders(made.apiKey)).status).toBe(200);
    // Another key's write after these calls: had they written, theirs would be done by then.
    const witness = await issue(member.key, { name: 'witness', scopes: ['read'] });
    expect((await orders(witness.apiKey)).status).toBe(200);
    await eventually(
      () => row(witness.id),
      (r) => r.last_used_at !== null,
      10_000,
      'witness last_used_at written',
    );
    expect(((await row(made.id)).last_used_at as Date).getTime()).toBe(at);
    const shown = await sys.http('GET', `/v1/keys/${made.id}`, { key: member.key });
    expect(shown.body.lastUsedAt).toBe(new Date(at).toISOString());
  });

  describe('escalation (a member key is hostile)', () => {
    it('refuses a key wider than the caller: admin from a member, write from a read key', async () => {
      const res = await sys.http('POST', '/v1/keys', { key: member.key, body: { name: 'root', scopes: ['admin'] } });
      expect(res.status).toBe(403);
      expect(res.body.issues).toEqual([{ field: 'scopes', message: expect.stringContaining('admin') }]);

      const narrow = await issue(member.key, { name: 'narrow', scopes: ['read', 'keys'] });
      for (const scopes of [['write'], ['pools:write'], ['read', 'proxy']]) {
        const wider = await sys.http('POST', '/v1/keys', { key: narrow.apiKey, body: { name: 'wider', scopes } });
        expect(wider.status, scopes.join()).toBe(403);
        expect(wider.body.issues[0].field).toBe('scopes');
      }
      // As narrow or narrower is fine.
      expect((await sys.http('POST', '/v1/keys', { key: narrow.apiKey, body: { name: 'same', scopes: ['read'] } })).status).toBe(201);
      const keysNow = await sys.db.query<{ n: string }>(`select count(*) as n from api_keys where tenant_id = $1 and ('admin' = any(scopes) or name in ('root', 'wider'))`, [
        member.id,
      ]);
      expect(keysNow[0]!.n).toBe('0');
    });

    it('refuses to rotate or revoke a key wider than the caller (a rotation would mint it)', async () => {
      const narrow = await issue(member.key, { name: 'narrow2', scopes: ['keys'] });
      const firstKeyId = (await sys.http('GET', '/v1/keys', { key: member.key })).body.keys.find((k: any) => k.name === 'first key').id;
      const rotate = await sys.http('POST', `/v1/keys/${firstKeyId}/rotate`, { key: narrow.apiKey });
      expect(rotate.status).toBe(403);
      expect(rotate.body.issues[0]).toMatchObject({ field: 'id' });
      const revoke = await sys.http('DELETE', `/v1/keys/${firstKeyId}`, { key: narrow.apiKey });
      expect(revoke.status).toBe(403);
      expect((await orders(member.key)).status).toBe(200);
      expect((await row(firstKeyId)).replaced_by).toBeNull();
    });

    it("cannot see, issue, rotate or revoke another tenant's keys", async () => {
      const theirs = await issue(other.key, { name: 'theirs', scopes: ['read'] });
      for (const [method, path] of [
        ['GET', `/v1/keys/${theirs.id}`],
        ['POST', `/v1/keys/${theirs.id}/rotate`],
        ['DELETE', `/v1/keys/${theirs.id}`],
      ] as const) {
        const res = await sys.http(method, path, { key: member.key });
        expect(res.status, `${method} ${path}`).toBe(404);
      }
      const create = await sys.http('POST', '/v1/keys', { key: member.key, body: { name: 'plant', scopes: ['read'], tenantId: other.id } });
      expect(create.status).toBe(403);
      expect(create.body.issues).toEqual([{ field: 'tenantId', message: 'not your tenant' }]);
      const list = await sys.http('GET', `/v1/keys?tenantId=${other.id}`, { key: member.key });
      expect(list.status).toBe(403);
      expect((await orders(theirs.apiKey)).status).toBe(200);
      expect((await row(theirs.id)).revoked_at).toBeNull();
      expect(await sys.db.query('select id from api_keys where tenant_id = $1 and name = $2', [other.id, 'plant'])).toEqual([]);
    });

    it('no key issues a key that outlives it, except its own successor', async () => {
      const week = new Date(Date.now() + 7 * 86_400_000);
      const parent = await issue(member.key, { name: 'parent', scopes: ['read', 'keys'], expiresAt: week.toISOString() });
      const child = await issue(parent.apiKey, { name: 'child', scopes: ['read'] });
      expect(child.expiresAt).toBe(week.toISOString());
      const later = await sys.http('POST', '/v1/keys', {
        key: parent.apiKey,
        body: { name: 'later', scopes: ['read'], expiresAt: new Date(week.getTime() + 86_400_000).toISOString() },
      });
      expect(later.status).toBe(400);
      expect(later.body.issues).toEqual([{ field: 'expiresAt', message: `not after the calling key's own expiry (${week.toISOString()})` }]);
      // Rotating a sibling cannot renew it past the caller either.
      const sibling = await sys.http('POST', `/v1/keys/${child.id}/rotate`, { key: parent.apiKey });
      expect(sibling.body.key.expiresAt).toBe(week.toISOString());
      // Its own successor is a renewal: the default lifetime from now.
      const self = await sys.http('POST', `/v1/keys/${parent.id}/rotate`, { key: parent.apiKey });
      expect(self.status).toBe(201);
      expect(Date.parse(self.body.key.expiresAt)).toBeGreaterThan(week.getTime());
    });

    it('a read-only key cannot manage keys at all (403 naming "keys")', async () => {
      const reader = await issue(member.key, { name: 'reader', scopes: ['read'] });
      const res = await sys.http('POST', '/v1/keys', { key: reader.apiKey, body: { name: 'x', scopes: ['read'] } });
      expect(res.status).toBe(403);
      expect(res.body.issues).toEqual([{ field: 'scope', message: expect.stringContaining('"keys"') }]);
    });
  });

  it("lets an admin manage any tenant's keys, but not give one `admin`", async () => {
    const made = await issue(adminKey, { name: 'ops', scopes: ['read'], tenantId: other.id });
    expect(made.tenantId).toBe(other.id);
    const list = await sys.http('GET', `/v1/keys?tenantId=${other.id}`, { key: adminKey });
    expect(list.body.keys.map((k: any) => k.id)).toContain(made.id);
    expect((await sys.http('GET', `/v1/keys/${made.id}`, { key: adminKey })).status).toBe(200);
    expect((await sys.http('DELETE', `/v1/keys/${made.id}`, { key: adminKey })).status).toBe(200);
    const root = await sys.http('POST', '/v1/keys', { key: adminKey, body: { name: 'root', scopes: ['admin'], tenantId: other.id } });
    expect(root.status).toBe(403);
    expect(root.body.issues).toEqual([{ field: 'scopes', message: '"admin" only in the admin tenant' }]);
    const nobody = await sys.http('POST', '/v1/keys', { key: adminKey, body: { name: 'x', scopes: ['read'], tenantId: randomUUID() } });
    expect(nobody.status).toBe(404);
  });

  it('replaces the config key when ADMIN_API_KEY changes: the old one is revoked at the next start', async () => {
    const configKey = (await sys.http('GET', '/v1/keys', { key: adminKey })).body.keys.find((k: any) => k.fromConfig);
    expect(configKey).toMatchObject({ scopes: ['admin'], expiresAt: null, fromConfig: true, prefix: adminKey.slice(0, 11) });
    expect((await sys.http('POST', `/v1/keys/${configKey.id}/rotate`, { key: adminKey })).status).toBe(409);
    const revoke = await sys.http('DELETE', `/v1/keys/${configKey.id}`, { key: adminKey });
    expect(revoke.status).toBe(409);
    expect(revoke.body.message).toContain('ADMIN_API_KEY');

    const newKey = `test_admin_${randomBytes(16).toString('hex')}`;
    for (const p of sys.processes('api-gateway')) await p.stop('SIGTERM');
    await sys.start('api-gateway', { ADMIN_API_KEY: newKey });

    const old = await orders(adminKey);
    expect(old.status).toBe(401);
    expect(old.body.message).toMatch(/^API key revoked at /);
    expect((await orders(newKey)).status).toBe(200);
    const configKeys = (await sys.http('GET', '/v1/keys?all=true', { key: newKey })).body.keys.filter((k: any) => k.fromConfig);
    expect(configKeys.map((k: any) => [k.id === configKey.id, k.status])).toEqual(
      expect.arrayContaining([
        [true, 'revoked'],
        [false, 'active'],
      ]),
    );
    expect(configKeys).toHaveLength(2);
    // Member keys are untouched by the change.
    expect((await orders(member.key)).status).toBe(200);
    adminKey = newKey;
  });
});

describe('API keys per tenant', () => {
  let sys: TestSystem;
  beforeAll(async () => {
    sys = await startTestSystem();
    await sys.start('api-gateway', { API_KEYS_PER_TENANT: '3' });
  });
  afterAll(async () => {
    await sys?.close();
  });

  it("stops at API_KEYS_PER_TENANT live keys, counting a rotation's successor; a revocation makes room", async () => {
    const t = await sys.http('POST', '/v1/tenants', { body: { name: `limit-${randomBytes(3).toString('hex')}` } });
    const key = t.body.apiKey as string;
    const made: string[] = [];
    for (let i = 0; i < 2; i++) {
      const res = await sys.http('POST', '/v1/keys', { key, body: { name: `k${i}`, scopes: ['read'] } });
      expect(res.status).toBe(201);
      made.push(res.body.id);
    }
    const over = await sys.http('POST', '/v1/keys', { key, body: { name: 'k2', scopes: ['read'] } });
    expect(over.status).toBe(403);
    expect(over.body).toMatchObject({ error: 'limit_reached', message: expect.stringContaining('API_KEYS_PER_TENANT') });
    // Chains of rotations would otherwise keep any number of keys alive through their overlaps.
    const rotate = await sys.http('POST', `/v1/keys/${made[0]}/rotate`, { key });
    expect(rotate.status).toBe(403);
    expect(rotate.body.error).toBe('limit_reached');

    expect((await sys.http('DELETE', `/v1/keys/${made[1]}`, { key })).status).toBe(200);
    expect((await sys.http('POST', `/v1/keys/${made[0]}/rotate`, { key })).status).toBe(201);
    expect((await sys.http('POST', '/v1/keys', { key, body: { name: 'k3', scopes: ['read'] } })).status).toBe(403);
    const live = await sys.db.query<{ n: number }>(
      `select count(*)::int as n from api_keys where tenant_id = $1 and revoked_at is null and (expires_at is null or expires_at > now())`,
      [t.body.id],
    );
    expect(live).toEqual([{ n: 3 }]);
  });
});
