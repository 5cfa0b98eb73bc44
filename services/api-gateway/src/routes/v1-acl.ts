import { isIP } from 'node:net';
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { compilePolicy, loadPolicy, PolicyError, type CompiledPolicy } from '@switchyard/acl';
import { ACL_LIMITS, AclPolicy, Id, MAX_POOL_TAGS, PoolTag, ProxyUserName, Timestamp } from '@switchyard/contracts';
import type { Kysely } from '@switchyard/db';
import { callerOf, tenantFor } from '../http/auth.js';
import { badRequest, notFound, RequestError } from '../http/errors.js';
import { currentPolicy, writePolicy } from '../acl-policies.js';
import type { Caller } from '../keys.js';
import { requires } from '../scopes.js';
import type { Database } from '../tables.js';
import { ErrorBody } from './schemas.js';

/** Denials counted by the enforcers per rule index (or `default`); null when Redis cannot be read. */
export type DenialReader = (tenantId: string) => Promise<Record<string, number> | null>;

export interface AclRouteDeps {
  db: Kysely<Database>;
  /** acl.evt.changed waits in the outbox: publish it now, not at the next poll. */
  onOrderPlaced: () => void;
  denials: DenialReader;
}

const TenantQuery = Type.Object({ tenantId: Type.Optional(Type.String({ ...Id, description: "admin keys only: another tenant's id" })) }, { additionalProperties: false });

const PolicyAnswer = Type.Object({
  tenantId: Id,
  version: Type.Integer({ minimum: 0, description: 'raised by every put and delete; 0: never had a policy' }),
  source: Type.Union([Type.String(), Type.Null()], { description: 'the text as put (HuJSON, comments kept); null: no policy, so the rules without one apply' }),
  policy: Type.Union([AclPolicy, Type.Null()], { description: 'the document parsed from source' }),
  updatedAt: Type.Union([Timestamp, Type.Null()]),
  denials: Type.Union([Type.Record(Type.String(), Type.Integer({ minimum: 0 })), Type.Null()], {
    description: 'connections denied, per acls index that was in force (or "default": no rule accepted), as counted by the enforcers; null when unavailable',
  }),
});

const Written = Type.Object({ tenantId: Id, version: Type.Integer({ minimum: 1 }), updatedAt: Timestamp });

/** The tenant a call is about (another only for an admin key), which must exist. */
async function policyTenant(db: Kysely<Database>, caller: Caller, asked: string | undefined): Promise<string> {
  const tenantId = tenantFor(caller, asked, 'query.tenantId', "reads or sets another tenant's policy");
  if (tenantId !== caller.tenantId && !(await db.selectFrom('tenants').select('id').where('id', '=', tenantId).executeTakeFirst())) throw notFound(`no tenant ${tenantId}`);
  return tenantId;
}

/** A PolicyError as an answer: 400 when the text is not HuJSON, 413 when too long, 422 when not a valid policy. */
function refusal(err: PolicyError, field: string): RequestError {
  const where = err.line !== undefined ? ` (line ${err.line}, column ${err.column})` : '';
  const path = [field, err.path].filter(Boolean).join('.');
  const message = `${path || field}${where}: ${err.reason}`;
  const issue = { path: path || field, message: `${err.reason}${where}` };
  if (err.kind === 'syntax') return new RequestError(400, 'bad_request', message, [issue]);
  if (err.kind === 'size') return new RequestError(413, 'payload_too_large', message, [issue]);
  return new RequestError(422, 'invalid_policy', message, [issue]);
}

/** Parses, checks and tests a policy text; the policy's own failing tests refuse it (422, each case named). */
function accept(text: string, field: string) {
  let loaded: ReturnType<typeof loadPolicy>;
  try {
    loaded = loadPolicy(text);
  } catch (err) {
    throw err instanceof PolicyError ? refusal(err, field) : err;
  }
  if (loaded.failures.length) {
    const first = loaded.failures[0]!;
    const more = loaded.failures.length > 1 ? ` (and ${loaded.failures.length - 1} more)` : '';
    throw new RequestError(
      422,
      'policy_tests_failed',
      `the policy's tests fail: ${first.message}${more}`,
      loaded.failures.map((f) => ({ path: [field, f.path].filter(Boolean).join('.'), message: f.message })),
    );
  }
  return loaded;
}

/**
 * A tenant's ACL policy (mounted under /v1, behind its key check): the text as put, checked,
 * tested by its own tests block, stored with a version, and announced to the enforcers.
 */
export function aclRoutes(deps: AclRouteDeps): FastifyPluginAsync {
  const { db } = deps;
  return async (plugin) => {
    // PUT reads its body as text, whatever it is sent as: HuJSON is not JSON (comments,
    // trailing commas), and the text is kept as put. Only this context parses so.
    await plugin.register(async (raw) => {
      raw.removeAllContentTypeParsers();
      raw.addContentTypeParser(['application/json', 'application/hujson', 'text/plain'], { parseAs: 'string' }, (_req, body, done) => done(null, body));
      raw.withTypeProvider<TypeBoxTypeProvider>().put(
        '/acl',
        {
          schema: {
            ...requires('write'),
            description:
              "sets the tenant's ACL policy: Tailscale-format HuJSON (groups, tagOwners, hosts, acls, tests) as application/hujson, text/plain or application/json. Refused with the path, line and column of the first problem (400 not HuJSON, 413 too long, 422 not a valid policy), or 422 naming each failing case of its tests block. Stored with the next version and sent to the load balancers and the activator.",
            querystring: TenantQuery,
            body: Type.String({ description: 'the policy text' }),
            response: { 200: Written, 400: ErrorBody, 403: ErrorBody, 404: ErrorBody, 413: ErrorBody, 422: ErrorBody },
          },
        },
        async (request) => {
          const tenantId = await policyTenant(db, callerOf(request), request.query.tenantId);
          const source = request.body;
          if (!source.trim()) throw badRequest([{ path: 'body', message: 'required: the policy text' }]);
          const { document } = accept(source, 'body');
          const row = (await writePolicy(db, tenantId, { source, document }))!;
          deps.onOrderPlaced();
          return { tenantId, version: row.version, updatedAt: row.updated_at.toISOString() };
        },
      );
    });

    const v1 = plugin.withTypeProvider<TypeBoxTypeProvider>();

    v1.get(
      '/acl',
      {
        schema: {
          ...requires('read'),
          description: "the tenant's ACL policy as put, its version, and the denials the enforcers counted per rule",
          querystring: TenantQuery,
          response: { 200: PolicyAnswer, 403: ErrorBody, 404: ErrorBody },
        },
      },
      async (request) => {
        const tenantId = await policyTenant(db, callerOf(request), request.query.tenantId);
        const [row, denials] = await Promise.all([currentPolicy(db, tenantId), deps.denials(tenantId)]);
        return {
          tenantId,
          version: row?.version ?? 0,
          source: row?.source ?? null,
          policy: row?.document ?? null,
          updatedAt: row ? row.updated_at.toISOString() : null,
          denials,
        };
      },
    );

    v1.delete(
      '/acl',
      {
        schema: {
          ...requires('write'),
          description: "removes the tenant's ACL policy: its pools are governed by the rules without one again (the version still rises)",
          querystring: TenantQuery,
          response: { 200: Written, 403: ErrorBody, 404: ErrorBody },
        },
      },
      async (request) => {
        const tenantId = await policyTenant(db, callerOf(request), request.query.tenantId);
        const row = await writePolicy(db, tenantId, null);
        if (!row) throw notFound('the tenant has no ACL policy');
        deps.onOrderPlaced();
        return { tenantId, version: row.version, updatedAt: row.updated_at.toISOString() };
      },
    );

    v1.post(
      '/acl/test',
      {
        schema: {
          ...requires('read'),
          description:
            'evaluates a hypothetical connection against the current policy, or against `policy` (a HuJSON text, checked and tested as a put would be, but not stored): allowed, and the acls index that accepted it',
          querystring: TenantQuery,
          body: Type.Object(
            {
              src: Type.Object(
                {
                  user: Type.Optional(ProxyUserName),
                  address: Type.String({ maxLength: 64, description: "the client's IP address" }),
                },
                { additionalProperties: false },
              ),
              dst: Type.Object(
                {
                  tags: Type.Optional(Type.Array(PoolTag, { maxItems: MAX_POOL_TAGS, description: "the pool's tags" })),
                  tag: Type.Optional(PoolTag),
                  port: Type.Integer({ minimum: 1, maximum: 65535 }),
                },
                { additionalProperties: false },
              ),
              policy: Type.Optional(Type.String({ maxLength: 2 * ACL_LIMITS.maxTextBytes, description: 'a policy to evaluate instead of the stored one' })),
            },
            { additionalProperties: false },
          ),
          response: {
            200: Type.Object({
              allowed: Type.Boolean(),
              rule: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()], { description: 'the acls index that accepted the connection' }),
              decidedBy: Type.Union([Type.Literal('rule'), Type.Literal('default-deny'), Type.Literal('no-policy')], {
                description: 'no-policy: the tenant has none, so the rules without a policy apply (allowed)',
              }),
              version: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()], { description: 'the stored version evaluated; null for a supplied policy' }),
            }),
            400: ErrorBody,
            403: ErrorBody,
            404: ErrorBody,
            413: ErrorBody,
            422: ErrorBody,
          },
        },
      },
      async (request) => {
        const tenantId = await policyTenant(db, callerOf(request), request.query.tenantId);
        const { src, dst, policy } = request.body;
        if (!isIP(src.address)) throw badRequest([{ path: 'src.address', message: 'must be an IPv4 or IPv6 address' }]);
        let compiled: CompiledPolicy;
        let version: number | null = null;
        if (policy !== undefined) compiled = accept(policy, 'policy').compiled;
        else {
          const row = await currentPolicy(db, tenantId);
          if (!row?.document) return { allowed: true, rule: null, decidedBy: 'no-policy' as const, version: row?.version ?? 0 };
          compiled = compilePolicy(row.document, { version: row.version });
          version = row.version;
        }
        const decision = compiled.decide({ user: src.user, address: src.address }, { tags: [...(dst.tags ?? []), ...(dst.tag ? [dst.tag] : [])], port: dst.port });
        return { allowed: decision.allowed, rule: decision.rule, decidedBy: decision.allowed ? ('rule' as const) : ('default-deny' as const), version };
      },
    );
  };
}
