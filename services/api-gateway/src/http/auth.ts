import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Kysely } from '@switchyard/db';
import { sameSecret } from '@switchyard/secrets';
import { findCaller, type Caller } from '../keys.js';
import type { Database } from '../tables.js';
import { RequestError } from './errors.js';

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

/** Native API: a tenant's key as a Bearer token or X-API-Key. */
export async function authenticateKey(db: Kysely<Database>, request: FastifyRequest): Promise<void> {
  const key = apiKeyOf(request);
  if (!key) throw new RequestError(401, 'unauthorized', 'missing API key: send "Authorization: Bearer <key>"');
  const caller = await findCaller(db, key);
  if (!caller) throw new RequestError(401, 'unauthorized', 'unknown or revoked API key');
  callers.set(request, caller);
}

/**
 * Compatibility surface: HTTP Basic with the configured account, as the VPN Exit Controller
 * asks, or a native key. A refusal carries a Basic challenge so browsers and curl can answer it.
 */
export async function authenticateBasicOrKey(db: Kysely<Database>, account: BasicAccount | undefined, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const refuse = (message: string) => {
    reply.header('www-authenticate', 'Basic realm="switchyard", charset="UTF-8"');
    return new RequestError(401, 'unauthorized', message);
  };
  const basic = basicOf(request);
  if (basic) {
    const ok = account !== undefined && sameSecret(basic.username, account.username) && sameSecret(basic.password, account.password);
    if (!ok) throw refuse(account ? 'wrong username or password' : 'HTTP Basic is not configured here (COMPAT_API_USERNAME); use an API key');
    callers.set(request, { tenantId: account!.tenantId, tenantName: account!.username, role: 'member' });
    return;
  }
  if (!apiKeyOf(request)) throw refuse('credentials required: HTTP Basic or "Authorization: Bearer <key>"');
  const caller = await findCaller(db, apiKeyOf(request)!);
  if (!caller) throw refuse('unknown or revoked API key');
  callers.set(request, caller);
}
