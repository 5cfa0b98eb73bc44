import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { Id, Timestamp } from '@switchyard/contracts';
import type { Kysely } from '@switchyard/db';
import { callerOf, isAdmin, tenantFor } from '../http/auth.js';
import { badRequest, notFound, RequestError } from '../http/errors.js';
import { createKey, getKey, listKeys, revokeKey, rotateKey, statusOf, type Caller, type KeyChangeRefusal } from '../keys.js';
import { isScope, SCOPES, wider, type Scope } from '../scopes.js';
import type { ApiKey, Database } from '../tables.js';
import { requires } from '../scopes.js';
import { ErrorBody } from './schemas.js';

/** The bounds of key lifetimes (API_KEY_* variables, config.ts). */
export interface KeyPolicy {
  defaultTtlDays: number;
  maxTtlDays: number;
  defaultOverlapHours: number;
  maxOverlapHours: number;
  /** Live keys one tenant may have. */
  perTenant: number;
}

const DAY = 86_400_000;
const HOUR = 3_600_000;
const nullable = <T extends import('typebox').TSchema>(t: T) => Type.Union([t, Type.Null()]);

const KeyView = Type.Object({
  id: Id,
  tenantId: Id,
  name: Type.String(),
  prefix: nullable(Type.String({ description: 'the first characters of the key; null for keys made before prefixes were kept' })),
  scopes: Type.Array(Type.String()),
  status: Type.Union([Type.Literal('active'), Type.Literal('expired'), Type.Literal('revoked')]),
  createdAt: Timestamp,
  expiresAt: nullable(Timestamp),
  lastUsedAt: nullable(Timestamp),
  revokedAt: nullable(Timestamp),
  replacedBy: nullable(Id),
  createdBy: nullable(Id),
  fromConfig: Type.Boolean({ description: 'the key of ADMIN_API_KEY: replaced by changing the config, never rotated or revoked here' }),
});
const Issued = Type.Object({ ...KeyView.properties, apiKey: Type.String({ description: 'shown once; only its hash is kept' }) });

const iso = (d: Date | null) => (d ? d.toISOString() : null);
function toView(k: ApiKey, now = new Date()) {
  return {
    id: k.id,
    tenantId: k.tenant_id,
    name: k.name,
    prefix: k.prefix,
    scopes: k.scopes,
    status: statusOf(k, now),
    createdAt: k.created_at.toISOString(),
    expiresAt: iso(k.expires_at),
    lastUsedAt: iso(k.last_used_at),
    revokedAt: iso(k.revoked_at),
    replacedBy: k.replaced_by,
    createdBy: k.created_by,
    fromConfig: k.from_config,
  };
}

const KEYS_OF_ANOTHER = "manages another tenant's keys";

/** A duration as people read it, for messages. */
function span(ms: number): string {
  if (ms >= 2 * DAY) return `${Math.round(ms / DAY)} days`;
  if (ms >= 2 * HOUR) return `${Math.round(ms / HOUR)} h`;
  return `${Math.max(1, Math.round(ms / 60_000))} min`;
}

/** A date in (now, now + max]; `inclusiveNow` also takes now itself. */
function within(value: string, now: Date, maxMs: number, field: string, what: string, inclusiveNow = false): Date {
  const at = new Date(value);
  const tooEarly = inclusiveNow ? at < now : at <= now;
  if (tooEarly) throw badRequest([{ path: field, message: `must be in the future` }]);
  if (at.getTime() > now.getTime() + maxMs) throw badRequest([{ path: field, message: `at most ${what} from now` }]);
  return at;
}

/**
 * No key issues a key that outlives it, except its own successor: a leaked key cannot plant
 * longer-lived children, only rotate itself, which ends it for its owner (who then sees why).
 * An unasked expiry is cut to the caller's; an asked one past it is a 400.
 */
function notOutliving(caller: Caller, at: Date, asked: boolean, field: string): Date {
  const bound = caller.expiresAt;
  if (!bound || at <= bound) return at;
  if (asked) throw badRequest([{ path: field, message: `not after the calling key's own expiry (${bound.toISOString()})` }]);
  return bound;
}

/** No key acts on a key wider than itself: that would be a way to a wider key. */
function notWiderThanCaller(caller: Caller, target: ApiKey): void {
  const extra = wider(target.scopes, caller.scopes);
  if (extra.length) {
    throw new RequestError(403, 'forbidden', `id: key ${target.id} holds ${extra.map((s) => `"${s}"`).join(', ')}, which the calling key does not`, [
      { path: 'id', message: `wider than the calling key (${extra.join(', ')})` },
    ]);
  }
}

function refusal(r: KeyChangeRefusal, id: string): RequestError {
  switch (r) {
    case 'gone':
      return notFound(`no API key ${id}`);
    case 'config_key':
      return new RequestError(409, 'conflict', `id: key ${id} is the config key; change ADMIN_API_KEY and restart to replace it`, [{ path: 'id', message: 'the config key' }]);
    case 'already_rotated':
      return new RequestError(409, 'conflict', `id: key ${id} was already rotated; rotate its successor`, [{ path: 'id', message: 'already rotated' }]);
    case 'not_live':
      return new RequestError(409, 'conflict', `id: key ${id} is revoked or expired; create a new key instead`, [{ path: 'id', message: 'revoked or expired' }]);
    case 'limit':
      return new RequestError(403, 'limit_reached', `a successor would pass the tenant's live API keys (API_KEYS_PER_TENANT); revoke one first`);
  }
}

/** A tenant's API keys (mounted under /v1, behind its key check and the `keys` scope). */
export function keyRoutes(deps: { db: Kysely<Database>; policy: KeyPolicy }): FastifyPluginAsync {
  const { db, policy } = deps;
  const maxTtl = policy.maxTtlDays * DAY;
  const maxOverlap = policy.maxOverlapHours * HOUR;

  /** The key by id, as the caller may see it: its own tenant's, or any for an admin. */
  async function visible(caller: Caller, id: string): Promise<ApiKey> {
    const key = await getKey(db, isAdmin(caller) ? undefined : caller.tenantId, id);
    if (!key) throw notFound(`no API key ${id}`);
    return key;
  }

  return async (plugin) => {
    const v1 = plugin.withTypeProvider<TypeBoxTypeProvider>();

    v1.post(
      '/keys',
      {
        // The answer holds the new key, shown once: a replay opens it sealed under SECRETS_KEY.
        config: { idempotency: { secretResponse: true } },
        schema: {
          ...requires('keys'),
          description: `issues an API key. \`scopes\` may not be wider than the calling key's, nor outlive it. Expires after ${policy.defaultTtlDays} days unless \`expiresAt\` says sooner or later (at most ${policy.maxTtlDays} days). The key is in this answer only.`,
          body: Type.Object(
            {
              name: Type.String({ minLength: 1, maxLength: 64 }),
              scopes: Type.Array(Type.String({ description: SCOPES.join(', ') }), { minItems: 1, maxItems: SCOPES.length }),
              expiresAt: Type.Optional(Timestamp),
              tenantId: Type.Optional(Type.String({ ...Id, description: "admin keys only: another tenant's id" })),
            },
            { additionalProperties: false },
          ),
          response: { 201: Issued, 400: ErrorBody, 403: ErrorBody, 404: ErrorBody },
        },
      },
      async (request, reply) => {
        const caller = callerOf(request);
        const now = new Date();
        const { name, scopes: askedScopes, expiresAt } = request.body;
        const unknown = askedScopes.map((s, i) => [s, i] as const).filter(([s]) => !isScope(s));
        if (unknown.length) throw badRequest(unknown.map(([s, i]) => ({ path: `scopes.${i}`, message: `unknown scope "${s}" (one of ${SCOPES.join(', ')})` })));
        const scopes = askedScopes as Scope[];
        const tenantId = tenantFor(caller, request.body.tenantId, 'tenantId', KEYS_OF_ANOTHER);
        const extra = wider(scopes, caller.scopes);
        if (extra.length) {
          throw new RequestError(403, 'forbidden', `scopes: ${extra.map((s) => `"${s}"`).join(', ')} wider than the calling key's scopes (${caller.scopes.join(', ')})`, [
            { path: 'scopes', message: `wider than the calling key's (${extra.join(', ')})` },
          ]);
        }
        if (scopes.includes('admin') && tenantId !== caller.tenantId) {
          throw new RequestError(403, 'forbidden', 'scopes: "admin" keys belong to the admin tenant only', [{ path: 'scopes', message: '"admin" only in the admin tenant' }]);
        }
        const asked = expiresAt ? within(expiresAt, now, maxTtl, 'expiresAt', `${policy.maxTtlDays} days (API_KEY_MAX_TTL_DAYS)`) : undefined;
        const until = notOutliving(caller, asked ?? new Date(now.getTime() + policy.defaultTtlDays * DAY), asked !== undefined, 'expiresAt');
        if (tenantId !== caller.tenantId && !(await db.selectFrom('tenants').select('id').where('id', '=', tenantId).executeTakeFirst())) {
          throw notFound(`no tenant ${tenantId}`);
        }
        const created = await createKey(db, { tenantId, name, scopes, expiresAt: until, createdBy: caller.keyId ?? null }, policy.perTenant, now);
        if ('limit' in created) {
          throw new RequestError(403, 'limit_reached', `a tenant may have at most ${created.limit} live API keys (API_KEYS_PER_TENANT); revoke one first`);
        }
        return reply
          .code(201)
          .header('location', `/v1/keys/${created.row.id}`)
          .send({ ...toView(created.row, now), apiKey: created.apiKey });
      },
    );

    v1.get(
      '/keys',
      {
        schema: {
          ...requires('keys'),
          description: "the tenant's keys, newest first: prefix and metadata, never the key or its hash",
          querystring: Type.Object(
            {
              tenantId: Type.Optional(Type.String({ ...Id, description: "admin keys only: another tenant's id" })),
              all: Type.Boolean({ default: false, description: 'also revoked and expired keys' }),
            },
            { additionalProperties: false },
          ),
          response: { 200: Type.Object({ keys: Type.Array(KeyView) }), 403: ErrorBody },
        },
      },
      async (request) => {
        const tenantId = tenantFor(callerOf(request), request.query.tenantId, 'query.tenantId', KEYS_OF_ANOTHER);
        const now = new Date();
        return { keys: (await listKeys(db, tenantId, { includeDead: request.query.all, now })).map((k) => toView(k, now)) };
      },
    );

    v1.get('/keys/:id', { schema: { ...requires('keys'), params: Type.Object({ id: Id }), response: { 200: KeyView, 404: ErrorBody } } }, async (request) =>
      toView(await visible(callerOf(request), request.params.id)),
    );

    v1.post(
      '/keys/:id/rotate',
      {
        // The answer holds the new key, shown once: a replay opens it sealed under SECRETS_KEY.
        config: { idempotency: { secretResponse: true } },
        schema: {
          ...requires('keys'),
          description: `issues a successor with the same name and scopes, living at most as long as the old key did (its expiresAt − createdAt) from now; the old key keeps working until \`overlapUntil\` (default ${policy.defaultOverlapHours} h, at most ${policy.maxOverlapHours} h, never past its own expiry; now ends it at once)`,
          params: Type.Object({ id: Id }),
          body: Type.Optional(Type.Object({ overlapUntil: Type.Optional(Timestamp), expiresAt: Type.Optional(Timestamp) }, { additionalProperties: false })),
          response: { 201: Type.Object({ key: Issued, previous: KeyView }), 400: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody },
        },
      },
      async (request, reply) => {
        const caller = callerOf(request);
        const now = new Date();
        const old = await visible(caller, request.params.id);
        notWiderThanCaller(caller, old);
        const body = request.body ?? {};
        const overlapUntil = body.overlapUntil
          ? within(body.overlapUntil, now, maxOverlap, 'overlapUntil', `${policy.maxOverlapHours} h (API_KEY_MAX_OVERLAP_HOURS)`, true)
          : new Date(now.getTime() + policy.defaultOverlapHours * HOUR);
        // A successor lives at most as long as the key it replaces did, counted from now: a 1-hour
        // key rotates into 1-hour keys, so a leaked short key cannot renew itself into a long one.
        // Keys without an expiry (made before 0007) keep API_KEY_MAX_TTL_DAYS.
        const lifetime = old.expires_at ? old.expires_at.getTime() - old.created_at.getTime() : undefined;
        const capped = lifetime !== undefined && lifetime < maxTtl;
        const maxMs = capped ? lifetime : maxTtl;
        const what = capped ? `the rotated key's own lifetime (${span(lifetime)})` : `${policy.maxTtlDays} days (API_KEY_MAX_TTL_DAYS)`;
        const asked = body.expiresAt ? within(body.expiresAt, now, maxMs, 'expiresAt', what) : undefined;
        const fresh = asked ?? new Date(now.getTime() + Math.min(policy.defaultTtlDays * DAY, maxMs));
        // A key's own successor is its renewal (bounded above); any other key's may not outlive the caller.
        const expiresAt = old.id === caller.keyId ? fresh : notOutliving(caller, fresh, asked !== undefined, 'expiresAt');
        const rotated = await rotateKey(db, old, { overlapUntil, expiresAt, createdBy: caller.keyId ?? null, perTenant: policy.perTenant, now });
        if (typeof rotated === 'string') throw refusal(rotated, old.id);
        return reply
          .code(201)
          .header('location', `/v1/keys/${rotated.row.id}`)
          .send({ key: { ...toView(rotated.row, now), apiKey: rotated.apiKey }, previous: toView(rotated.old, now) });
      },
    );

    v1.delete(
      '/keys/:id',
      {
        schema: {
          ...requires('keys'),
          description: 'revokes a key at once (the next call with it is a 401); answers the revoked key',
          params: Type.Object({ id: Id }),
          response: { 200: KeyView, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody },
        },
      },
      async (request) => {
        const caller = callerOf(request);
        const key = await visible(caller, request.params.id);
        notWiderThanCaller(caller, key);
        const revoked = await revokeKey(db, key);
        if (typeof revoked === 'string') throw refusal(revoked, key.id);
        return toView(revoked);
      },
    );
  };
}
