/**
 * Idempotency-Key for the routes that opt in (`config: { idempotency: {} }`): the first request
 * with a key holds it while it runs; a retry while it runs gets 409, a retry after it succeeded
 * gets its response again (`Idempotent-Replayed: true`), the key with another request gets
 * 422. Keys are per tenant and remembered for IDEMPOTENCY_TTL_MS.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import Type, { type TSchema } from 'typebox';
import type { Kysely } from '@switchyard/db';
import { open, seal } from '@switchyard/secrets';
import { callerOf } from '../http/auth.js';
import { RequestError } from '../http/errors.js';
import { ErrorBody } from '../routes/schemas.js';
import type { Database } from '../tables.js';
import { fingerprint, fingerprintKey } from './fingerprint.js';
import { claimKey, finishKey, IDEMPOTENCY_TTL_MS, releaseKey, type StoredResponse } from './store.js';

export interface IdempotencyRoute {
  /**
   * The response holds a secret shown once (a password, an API key): it is kept sealed with
   * SECRETS_KEY. Without that key it is not kept, and a retry learns only that it succeeded.
   */
  secretResponse?: boolean;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Takes the Idempotency-Key header (idempotency/plugin.ts). */
    idempotency?: IdempotencyRoute;
  }
}

export interface IdempotencyOptions {
  db: Kysely<Database>;
  /** SECRETS_KEY: keys the fingerprints and seals secret responses. */
  secretsKey?: Buffer | undefined;
  /** A claim in flight longer than this is taken over (its holder crashed or hangs). */
  inFlightMs: number;
}

export const IDEMPOTENCY_HEADER = 'idempotency-key';
export const REPLAYED_HEADER = 'idempotent-replayed';

export const IdempotencyKeyHeader = Type.String({
  minLength: 1,
  maxLength: 200,
  pattern: '^[\\x21-\\x7e]+$',
  description: 'a retry with the same key and request gets the first response again (Idempotent-Replayed: true); remembered 24 h per tenant',
});

/** Response headers a replay repeats; the rest are the server's of the moment. */
const KEPT_HEADERS = ['content-type', 'location'];

/** The request's key, once its route's schema checked it. */
export function idempotencyKeyOf(request: FastifyRequest): string | undefined {
  const key = request.headers[IDEMPOTENCY_HEADER];
  return typeof key === 'string' ? key : undefined;
}

const keyIssue = (message: string) => [{ path: `headers.${IDEMPOTENCY_HEADER}`, message }];

interface Held {
  tenantId: string;
  key: string;
  token: string;
  secretResponse: boolean;
}

/** Adds the header to an opted-in route's schema, so it is validated and documented with the route. */
function withKeyHeader(schema: RouteOptions['schema']): RouteOptions['schema'] {
  const current = (schema?.headers ?? undefined) as (TSchema & { properties?: Record<string, TSchema> }) | undefined;
  const headers = Type.Object({ ...(current?.properties ?? {}), [IDEMPOTENCY_HEADER]: Type.Optional(IdempotencyKeyHeader) });
  const response = { 409: ErrorBody, 422: ErrorBody, ...((schema?.response as Record<string, unknown> | undefined) ?? {}) };
  return { ...schema, headers, response };
}

/**
 * Hooks into `scope` (after its authentication, which names the tenant). Only requests that
 * succeed (2xx) are remembered: a refused or failed one changed nothing the client can rely on,
 * so its key is free again for the retry.
 */
export function installIdempotency(scope: FastifyInstance, opts: IdempotencyOptions): void {
  const { db, secretsKey, inFlightMs } = opts;
  const ttlMs = IDEMPOTENCY_TTL_MS;
  const fpKey = secretsKey ? fingerprintKey(secretsKey) : undefined;
  const held = new WeakMap<FastifyRequest, Held>();

  scope.addHook('onRoute', (route) => {
    if (route.config?.idempotency) route.schema = withKeyHeader(route.schema);
  });

  scope.addHook('preHandler', async (request, reply) => {
    const route = request.routeOptions.config.idempotency;
    const key = idempotencyKeyOf(request);
    if (!route || key === undefined) return;
    const { tenantId } = callerOf(request);
    const fp = fingerprint({ method: request.method, path: request.url, tenantId, body: request.body }, fpKey);
    const claim = await claimKey(db, { tenantId, key, fingerprint: fp, ttlMs, inFlightMs });
    switch (claim.kind) {
      case 'claimed':
        if (claim.takenOver) request.log.warn({ tenantId, idempotencyKey: key }, 'took over an Idempotency-Key whose request did not finish');
        held.set(request, { tenantId, key, token: claim.token, secretResponse: route.secretResponse === true });
        return;
      case 'in_flight':
        reply.header('retry-after', '1');
        throw new RequestError(
          409,
          'idempotency_key_in_flight',
          `Idempotency-Key "${key}": a request with this key is still in progress; retry when it has finished`,
          keyIssue('a request with this key is in progress'),
        );
      case 'mismatch':
        throw new RequestError(
          422,
          'idempotency_key_reused',
          `Idempotency-Key "${key}" was already used for a different request`,
          keyIssue('already used for a different request'),
        );
      case 'done':
        return replay(reply, key, claim.response);
    }
  });

  function replay(reply: FastifyReply, key: string, response: StoredResponse | 'withheld'): FastifyReply {
    if (response === 'withheld' || (response.sealed && !secretsKey)) {
      throw new RequestError(
        409,
        'idempotency_response_withheld',
        `Idempotency-Key "${key}": the request with this key succeeded, but its answer held a secret shown only once, which this gateway keeps only with SECRETS_KEY`,
        keyIssue('the first answer was not kept'),
      );
    }
    const body = response.sealed ? open(response.body, secretsKey!) : response.body;
    for (const [name, value] of Object.entries(response.headers)) reply.header(name, value);
    return reply.code(response.status).header(REPLAYED_HEADER, 'true').send(body);
  }

  scope.addHook('onSend', async (request, reply, payload) => {
    const holder = held.get(request);
    if (!holder) return payload;
    held.delete(request);
    const { tenantId, key, token } = holder;
    // Awaited before the answer leaves: a client that retries after it sees the answer finds
    // the key done, never still in flight.
    try {
      const text = typeof payload === 'string' ? payload : Buffer.isBuffer(payload) ? payload.toString('utf8') : payload == null ? '' : undefined;
      if (reply.statusCode < 200 || reply.statusCode >= 300 || text === undefined) {
        await releaseKey(db, tenantId, key, token);
        return payload;
      }
      const headers: Record<string, string> = {};
      for (const name of KEPT_HEADERS) {
        const value = reply.getHeader(name);
        if (value !== undefined) headers[name] = String(value);
      }
      const kept: StoredResponse | 'withheld' = !holder.secretResponse
        ? { status: reply.statusCode, headers, body: text, sealed: false }
        : secretsKey
          ? { status: reply.statusCode, headers, body: seal(text, secretsKey), sealed: true }
          : 'withheld';
      const finished = await finishKey(db, tenantId, key, token, reply.statusCode, kept);
      if (!finished) request.log.warn({ tenantId, idempotencyKey: key }, 'an Idempotency-Key was taken over before its request finished; the later request answers retries');
    } catch (err) {
      // The answer is true whatever the record says; a retry meets the claim (409) until it is
      // taken over, and orders meet their own key on the order row.
      request.log.warn({ err, tenantId, idempotencyKey: key }, 'could not record the Idempotency-Key outcome');
    }
    return payload;
  });
}
