import { describe, expect, it } from 'vitest';
import Fastify from 'fastify';
import { pino } from 'pino';
import { assertScopeDeclared, createAuth } from '../src/http/auth.js';
import { createRateLimits, DEFAULT_RATE_LIMITS } from '../src/http/rate-limits.js';
import { lastUsedRecorder } from '../src/keys.js';
import { grantedBy, grants, normalize, requiredScopeOf, requires, SCOPES, wider, type Scope } from '../src/scopes.js';

describe('scopes', () => {
  it('implies as documented: write → read, pools:write, proxy, keys; admin → everything', () => {
    expect([...grantedBy(['write'])].sort()).toEqual(['keys', 'pools:write', 'proxy', 'read', 'write']);
    expect([...grantedBy(['admin'])].sort()).toEqual([...SCOPES].sort());
    for (const s of ['read', 'pools:write', 'proxy', 'keys'] as const) expect([...grantedBy([s])]).toEqual([s]);
  });

  it('grants a required scope from any holder that implies it, and nothing else', () => {
    expect(grants(['read'], 'read')).toBe(true);
    expect(grants(['read'], 'pools:write')).toBe(false);
    expect(grants(['pools:write'], 'read')).toBe(false);
    expect(grants(['write'], 'pools:write')).toBe(true);
    expect(grants(['write'], 'admin')).toBe(false);
    expect(grants(['admin'], 'proxy')).toBe(true);
    expect(grants([], 'read')).toBe(false);
  });

  it('finds what a requested set adds over the held one (escalation)', () => {
    expect(wider(['read', 'proxy'], ['write'])).toEqual([]);
    expect(wider(['admin'], ['write'])).toEqual(['admin']);
    expect(wider(['write'], ['read', 'pools:write', 'proxy', 'keys'])).toEqual(['write']);
    expect(wider(['read', 'proxy'], ['read', 'keys'])).toEqual(['proxy']);
    expect(wider(['read'], ['admin'])).toEqual([]);
  });

  it('normalizes a set: no duplicates, nothing another member implies, in a fixed order', () => {
    expect(normalize(['read', 'write', 'read'])).toEqual(['write']);
    expect(normalize(['proxy', 'read'])).toEqual(['read', 'proxy']);
    expect(normalize(['admin', 'write', 'keys'])).toEqual(['admin']);
  });

  it('declares a scope as both an OpenAPI security requirement and x-required-scope', () => {
    expect(requires('pools:write')).toEqual({ security: [{ apiKey: ['pools:write'] }], 'x-required-scope': 'pools:write' });
    expect(requires('read', { basic: true }).security).toEqual([{ apiKey: ['read'] }, { basic: ['read'] }]);
    expect(requiredScopeOf(requires('keys'))).toBe('keys');
    expect(requiredScopeOf({ 'x-required-scope': 'root' })).toBeUndefined();
    expect(requiredScopeOf({})).toBeUndefined();
    expect(requiredScopeOf(undefined)).toBeUndefined();
  });
});

describe('a route behind a key check', () => {
  const plugin = (withScope: boolean) => async (app: import('fastify').FastifyInstance) => {
    app.addHook('onRoute', assertScopeDeclared);
    // A child plugin, as the routes files are: the guard still sees its routes.
    await app.register(async (child) => {
      child.get('/things', { schema: withScope ? requires('read') : {} }, async () => ({ ok: true }));
    });
  };

  it('without a declared scope stops the app at start, naming the route', async () => {
    const app = Fastify({ loggerInstance: pino({ level: 'silent' }) });
    app.register(plugin(false), { prefix: '/v1' });
    await expect(app.ready()).rejects.toThrow(/GET \/v1\/things: declare the scope/);
  });

  it('with one starts', async () => {
    const app = Fastify({ loggerInstance: pino({ level: 'silent' }) });
    app.register(plugin(true), { prefix: '/v1' });
    await expect(app.ready()).resolves.toBeDefined();
    await app.close();
  });
});

describe('lastUsedRecorder', () => {
  /** Counts the UPDATEs the recorder sends; nothing else of the database is used. */
  function countingDb() {
    let updates = 0;
    const chain: any = new Proxy(
      {},
      {
        get: (_t, prop) => {
          if (prop === 'execute') return async () => void updates++;
          if (prop === 'then') return undefined;
          return () => chain;
        },
      },
    );
    return { db: { updateTable: () => chain } as any, updates: () => updates };
  }

  it('writes a key at most once per interval, each key on its own', async () => {
    const { db, updates } = countingDb();
    const used = lastUsedRecorder(db, { warn: () => undefined }, 60_000);
    const t0 = 1_000_000;
    used('t', 'k1', t0);
    used('t', 'k1', t0 + 1);
    used('t', 'k1', t0 + 59_999);
    expect(updates()).toBe(1);
    used('t', 'k2', t0 + 2);
    expect(updates()).toBe(2);
    used('t', 'k1', t0 + 60_000);
    expect(updates()).toBe(3);
  });
});

describe('request budgets (in memory)', () => {
  const reply = () => {
    const headers = new Map<string, string>();
    return { headers, header: (k: string, v: string) => headers.set(k, v), getHeader: (k: string) => headers.get(k) } as any;
  };

  it('counts down in RateLimit-* headers, then refuses with 429 and Retry-After', async () => {
    const limits = createRateLimits({ ...DEFAULT_RATE_LIMITS, perKey: 2, windowSec: 30 });
    const r1 = reply();
    await limits.key('k', r1);
    expect(r1.headers.get('ratelimit-limit')).toBe('2');
    expect(r1.headers.get('ratelimit-remaining')).toBe('1');
    expect(Number(r1.headers.get('ratelimit-reset'))).toBeGreaterThan(0);
    await limits.key('k', reply());
    const r3 = reply();
    const err = await limits.key('k', r3).catch((e: unknown) => e);
    expect(err).toMatchObject({ statusCode: 429, error: 'rate_limited', issues: [{ path: 'authorization' }] });
    expect(r3.headers.get('ratelimit-remaining')).toBe('0');
    expect(Number(r3.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(Number(r3.headers.get('retry-after'))).toBeLessThanOrEqual(30);
    // Another key has its own budget.
    const other = reply();
    await limits.key('k2', other);
    expect(other.headers.get('ratelimit-remaining')).toBe('1');
  });

  it('shows the tighter of the address and key budgets', async () => {
    const limits = createRateLimits({ ...DEFAULT_RATE_LIMITS, perKey: 5, perAddress: 100, windowSec: 30 });
    const r = reply();
    await limits.address('10.0.0.1', r);
    await limits.key('k', r);
    expect(r.headers.get('ratelimit-limit')).toBe('5');
    expect(r.headers.get('ratelimit-remaining')).toBe('4');
  });

  it('refuses an address after its failed authentications, not another address', async () => {
    const limits = createRateLimits({ ...DEFAULT_RATE_LIMITS, authFailuresPerAddress: 2, authFailureWindowSec: 30 });
    await limits.authAllowed('10.0.0.1', reply());
    await limits.authFailed('10.0.0.1');
    await limits.authAllowed('10.0.0.1', reply());
    await limits.authFailed('10.0.0.1');
    const r = reply();
    await expect(limits.authAllowed('10.0.0.1', r)).rejects.toMatchObject({ statusCode: 429 });
    expect(r.headers.get('retry-after')).toBeDefined();
    await expect(limits.authAllowed('10.0.0.2', reply())).resolves.toBeUndefined();
  });
});

describe('the scope check', () => {
  it('answers 403 naming the scope the key lacks, before the handler runs', async () => {
    let ran = 0;
    const caller = { tenantId: 't', tenantName: 't', role: 'member' as const, scopes: ['read'] as Scope[], keyId: 'k' };
    const db: any = {
      selectFrom: () => {
        const q: any = { innerJoin: () => q, select: () => q, where: () => q, executeTakeFirst: async () => ({ ...caller, revokedAt: null, expiresAt: null, replacedBy: null }) };
        return q;
      },
    };
    const auth = createAuth({ db, limits: createRateLimits(DEFAULT_RATE_LIMITS), used: () => undefined });
    const app = Fastify({ loggerInstance: pino({ level: 'silent' }) });
    app.setErrorHandler((err: any, _req, reply) => reply.code(err.statusCode ?? 500).send({ error: err.error, message: err.message, issues: err.issues }));
    app.addHook('onRequest', auth.key);
    app.post('/orders', { schema: requires('pools:write') }, async () => {
      ran++;
      return {};
    });
    app.get('/orders', { schema: requires('read') }, async () => ({ ok: true }));
    const refused = await app.inject({ method: 'POST', url: '/orders', headers: { authorization: 'Bearer sy_x' }, payload: {} });
    expect(refused.statusCode).toBe(403);
    expect(refused.json()).toMatchObject({ error: 'forbidden', issues: [{ path: 'scope', message: expect.stringContaining('"pools:write"') }] });
    expect(ran).toBe(0);
    expect((await app.inject({ method: 'GET', url: '/orders', headers: { authorization: 'Bearer sy_x' } })).statusCode).toBe(200);
    await app.close();
  });
});
