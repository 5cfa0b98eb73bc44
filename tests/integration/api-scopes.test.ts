import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes, randomUUID } from 'node:crypto';
import { COMPAT_PASSWORD, COMPAT_USER, basicAuth, startTestSystem, type TestSystem } from '@switchyard/testkit';

// Table-driven over the OpenAPI document of a running gateway: every operation declares one
// scope, and a key without it is refused with a 403 naming it. A new route without a declared
// scope fails here (and the gateway refuses to start with one behind a key check).

/** Operations anyone may call; everything else must declare a scope. */
const PUBLIC = new Set(['GET /api/health']);

/**
 * For each scope, the widest key that still lacks it: every scope that does not grant it
 * (docs/api.md, "Scopes"). A scope not in this table fails the test.
 */
const LACKING: Record<string, string[]> = {
  read: ['pools:write', 'proxy', 'keys'],
  'pools:write': ['read', 'proxy', 'keys'],
  proxy: ['read', 'pools:write', 'keys'],
  keys: ['read', 'pools:write', 'proxy'],
  write: ['read', 'pools:write', 'proxy', 'keys'],
  admin: ['write'],
};

interface Operation {
  method: string;
  path: string;
  op: { security?: Array<Record<string, string[]>>; 'x-required-scope'?: string };
}

/** A concrete URL for a templated path: ids are fresh UUIDs, countries `jp`. */
function urlOf(path: string): string {
  return path.replace(/\{(\w+)\}/g, (_, name: string) => (name.includes('country') ? 'jp' : randomUUID()));
}

describe('scopes on every route', () => {
  let sys: TestSystem;
  let operations: Operation[];
  const lacking = new Map<string, string>();
  const holding = new Map<string, string>();

  beforeAll(async () => {
    sys = await startTestSystem();
    // Basic credentials on, so the compat surface's second scheme is in the document too.
    await sys.start('api-gateway', { COMPAT_API_USERNAME: COMPAT_USER, COMPAT_API_PASSWORD: COMPAT_PASSWORD, SERVICE_REQUEST_TIMEOUT_MS: '500' });
    const doc = await sys.http('GET', '/openapi.json', { key: null });
    expect(doc.status).toBe(200);
    operations = Object.entries(doc.body.paths as Record<string, Record<string, Operation['op']>>).flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, op]) => ({ method: method.toUpperCase(), path, op })),
    );
    const created = await sys.http('POST', '/v1/tenants', { body: { name: `scopes-${randomBytes(3).toString('hex')}` } });
    const tenantId = created.body.id as string;
    for (const [scope, others] of Object.entries(LACKING)) {
      const key = async (scopes: string[]) => {
        const res = await sys.http('POST', '/v1/keys', { body: { name: `${scope}`, scopes, tenantId } });
        expect(res.status, JSON.stringify(res.body)).toBe(201);
        return res.body.apiKey as string;
      };
      lacking.set(scope, await key(others));
      // admin keys live in the admin tenant only: the config key holds it.
      holding.set(scope, scope === 'admin' ? sys.adminKey : await key([scope]));
    }
  });
  afterAll(async () => {
    await sys?.close();
  });

  it('reads a route list that covers both surfaces', () => {
    const paths = new Set(operations.map((o) => o.path));
    for (const p of ['/v1/orders', '/v1/keys', '/v1/keys/{id}/rotate', '/v1/proxy-users', '/v1/tenants', '/api/nodes', '/api/nodes/{country_code}/start'])
      expect(paths).toContain(p);
    expect(operations.length).toBeGreaterThan(40);
  });

  it('every operation declares one known scope, shown as its security requirement', () => {
    const undeclared: string[] = [];
    for (const { method, path, op } of operations) {
      const name = `${method} ${path}`;
      if (PUBLIC.has(name)) {
        expect(op.security, name).toEqual([]);
        continue;
      }
      const scope = op['x-required-scope'];
      if (!scope || !(scope in LACKING)) {
        undeclared.push(`${name} (${scope ?? 'none'})`);
        continue;
      }
      const expected = path.startsWith('/api/') ? [{ apiKey: [scope] }, { basic: [scope] }] : [{ apiKey: [scope] }];
      expect(op.security, name).toEqual(expected);
    }
    expect(undeclared, 'operations without a known scope').toEqual([]);
  });

  it('refuses a key without the scope with a 403 naming it, on every operation', async () => {
    const wrong: string[] = [];
    for (const { method, path, op } of operations) {
      const name = `${method} ${path}`;
      if (PUBLIC.has(name)) continue;
      const scope = op['x-required-scope']!;
      const key = lacking.get(scope);
      expect(key, `${name}: scope ${scope}`).toBeDefined();
      const res = await sys.http(method, urlOf(path), { key: key!, ...(method === 'GET' || method === 'DELETE' ? {} : { body: {} }) });
      const named = res.body?.issues?.some((i: any) => i.field === 'scope' && i.message.includes(`"${scope}"`)) && res.body.message.includes(`"${scope}"`);
      if (res.status !== 403 || !named) wrong.push(`${name}: ${res.status} ${JSON.stringify(res.body)}`);
    }
    expect(wrong).toEqual([]);
  });

  it('lets a key with exactly that scope past the check, on every operation', async () => {
    const wrong: string[] = [];
    for (const { method, path, op } of operations) {
      const name = `${method} ${path}`;
      if (PUBLIC.has(name)) continue;
      const res = await sys.http(method, urlOf(path), { key: holding.get(op['x-required-scope']!)!, ...(method === 'GET' || method === 'DELETE' ? {} : { body: {} }) });
      // Past the check a call may still fail (a 400 for the empty body, a 404 for the made-up
      // id, a 503 with no exit-node-manager), but not for want of credentials or scope.
      if (res.status === 401 || (res.status === 403 && res.body?.issues?.some((i: any) => i.field === 'scope'))) wrong.push(`${name}: ${res.status} ${JSON.stringify(res.body)}`);
    }
    expect(wrong).toEqual([]);
  });

  it('answers an unknown path under a checked prefix with a 404, not a scope refusal', async () => {
    for (const path of ['/v1/no-such-route', '/api/no-such-route']) {
      const res = await sys.http('GET', path, { key: lacking.get('admin')! });
      expect(res.status, path).toBe(404);
    }
  });

  it('asks every operation but the public ones for credentials (401)', async () => {
    const wrong: string[] = [];
    for (const { method, path } of operations) {
      const name = `${method} ${path}`;
      const res = await sys.http(method, urlOf(path), { key: null });
      if (PUBLIC.has(name) ? res.status === 401 : res.status !== 401) wrong.push(`${name}: ${res.status}`);
    }
    expect(wrong).toEqual([]);
  });

  it("passes the compat Basic account (a member's scopes) on /api; /v1 takes keys only", async () => {
    const res = await sys.http('POST', '/v1/tenants', { key: null, headers: { authorization: basicAuth() }, body: { name: 'basic' } });
    expect(res.status).toBe(401);
    const nodes = await sys.http('GET', '/api/countries', { key: null, headers: { authorization: basicAuth() } });
    expect(nodes.status).not.toBe(401);
    expect(nodes.status).not.toBe(403);
  });
});
