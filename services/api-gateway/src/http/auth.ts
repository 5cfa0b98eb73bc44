import type { FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import type { Kysely } from '@switchyard/db';
import { sameSecret } from '@switchyard/secrets';
import { checkKey, type Caller } from '../keys.js';
import { grants, LEGACY_SCOPES, requiredScopeOf } from '../scopes.js';
import type { Database } from '../tables.js';
import { RequestError } from './errors.js';
import type { RateLimits } from './rate-limits.js';

/** The one user of the compatibility surface's HTTP Basic auth, and the tenant it acts for. */
export interface BasicAccount {
  username: string;
  password: string;
  tenantId: string;
}

const callers = new WeakMap<FastifyRequest, Caller>();

export function callerOf(request: FastifyRequest): Caller {
  const caller = callers.get(request);
  if (!caller) throw new RequestError(401, 'unauthorized', 'missing API key');
  return caller;
}

export const isAdmin = (caller: Caller): boolean => grants(caller.scopes, 'admin');

/**
 * The tenant a call is about: the caller's own unless an admin key names another (`field`, the
 * request's field that named it). A member naming another tenant gets 403: "<field>: only an
 * admin key <acts>".
 */
export function tenantFor(caller: Caller, asked: string | undefined, field: string, acts: string): string {
  if (asked === undefined || asked === caller.tenantId) return caller.tenantId;
  if (!isAdmin(caller)) throw new RequestError(403, 'forbidden', `${field}: only an admin key ${acts}`, [{ path: field, message: 'not your tenant' }]);
  return asked;
}

/**
 * The principal behind a call: its API key's id, or `basic:<user>` for the compat Basic account
 * (the name its request budget is counted under too).
 */
export function callerIdOf(caller: Caller): string {
  return caller.keyId ?? `basic:${caller.tenantName}`;
}

function apiKeyOf(request: FastifyRequest): string | undefined {
  const auth = request.headers.authorization;
  if (auth?.startsWith('Bearer ')) return auth.slice('Bearer '.length).trim();
  const header = request.headers['x-api-key'];
  return typeof header === 'string' ? header : undefined;
}

function basicOf(request: FastifyRequest): { username: string; password: string } | undefined {
  const auth = request.headers.authorization;
  if (!auth?.toLowerCase().startsWith('basic ')) return undefined;
  const decoded = Buffer.from(auth.slice('basic '.length).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/**
 * For `onRoute` of every plugin behind a key check: a route that declares no scope stops the
 * gateway at start, so none can be added that any key opens.
 */
export function assertScopeDeclared(route: RouteOptions): void {
  if (!requiredScopeOf(route.schema)) {
    throw new Error(`${route.method} ${route.url}: declare the scope this route requires (schema: { ...requires('read') }, scopes.ts)`);
  }
}

/** 403 naming the scope the route requires and the caller's key lacks. */
function checkScope(request: FastifyRequest, caller: Caller): void {
  // An unknown path under a checked prefix is a 404 for the not-found handler, not a 403.
  if (request.is404) return;
  const required = requiredScopeOf(request.routeOptions.schema);
  // Unreachable while assertScopeDeclared guards the plugin; refused rather than trusted.
  if (!required) throw new RequestError(403, 'forbidden', 'this route declares no scope, so no key may call it', [{ path: 'scope', message: 'none declared' }]);
  if (!grants(caller.scopes, required)) {
    const held = caller.scopes.join(', ');
    throw new RequestError(403, 'forbidden', `scope: this API key lacks scope "${required}" (it has ${held})`, [
      { path: 'scope', message: `requires "${required}", which this key's scopes (${held}) do not grant` },
    ]);
  }
}

export interface AuthDeps {
  db: Kysely<Database>;
  limits: RateLimits;
  /** Records a key's last use (throttled: keys.ts lastUsedRecorder). */
  used: (tenantId: string, keyId: string) => void;
}

export type Authenticate = (request: FastifyRequest, reply: FastifyReply) => Promise<void>;

/**
 * The checks every call behind a key passes, in order: the address's failed authentications,
 * the key (unknown, revoked, expired: 401 with the reason), the key's request budget, the
 * route's scope.
 */
export function createAuth(deps: AuthDeps) {
  const { db, limits } = deps;

  async function byKey(request: FastifyRequest, reply: FastifyReply, key: string, refuse: (m: string) => RequestError): Promise<void> {
    const checked = await checkKey(db, key);
    if ('refused' in checked) {
      await limits.authFailed(request.ip);
      throw refuse(checked.refused);
    }
    const { caller } = checked;
    callers.set(request, caller);
    deps.used(caller.tenantId, caller.keyId!);
    await limits.key(caller.keyId!, reply);
    checkScope(request, caller);
  }

  /** Native API: a tenant's key as a Bearer token or X-API-Key. */
  const key: Authenticate = async (request, reply) => {
    await limits.authAllowed(request.ip, reply);
    const given = apiKeyOf(request);
    // Not a failed guess: a call without credentials learns nothing, so it is not counted.
    if (!given) throw new RequestError(401, 'unauthorized', 'missing API key: send "Authorization: Bearer <key>"');
    await byKey(request, reply, given, (m) => new RequestError(401, 'unauthorized', m));
  };

  /**
   * Compatibility surface: HTTP Basic with the configured account, as the VPN Exit Controller
   * asks, or a native key. A refusal carries a Basic challenge so browsers and curl can answer
   * it. The Basic account holds a member's scopes (LEGACY_SCOPES.member) and the budget of a key.
   */
  const basicOrKey =
    (account: BasicAccount | undefined): Authenticate =>
    async (request, reply) => {
      const refuse = (message: string) => {
        reply.header('www-authenticate', 'Basic realm="switchyard", charset="UTF-8"');
        return new RequestError(401, 'unauthorized', message);
      };
      await limits.authAllowed(request.ip, reply);
      const basic = basicOf(request);
      if (basic) {
        const ok = account !== undefined && sameSecret(basic.username, account.username) && sameSecret(basic.password, account.password);
        if (!ok) {
          await limits.authFailed(request.ip);
          throw refuse(account ? 'wrong username or password' : 'HTTP Basic is not configured here (COMPAT_API_USERNAME); use an API key');
        }
        const caller: Caller = { tenantId: account!.tenantId, tenantName: account!.username, role: 'member', scopes: LEGACY_SCOPES.member };
        callers.set(request, caller);
        await limits.key(callerIdOf(caller), reply);
        checkScope(request, caller);
        return;
      }
      const given = apiKeyOf(request);
      if (!given) throw refuse('credentials required: HTTP Basic or "Authorization: Bearer <key>"');
      await byKey(request, reply, given, refuse);
    };

  return { key, basicOrKey };
}
export type Auth = ReturnType<typeof createAuth>;
