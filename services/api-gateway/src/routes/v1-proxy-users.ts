import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { Id, ProxyUserName, Timestamp } from '@switchyard/contracts';
import type { Kysely } from '@switchyard/db';
import { callerOf } from '../http/auth.js';
import { badRequest, notFound, RequestError } from '../http/errors.js';
import { createProxyUser, listProxyUsers, proxyUserNameIssue, revokeProxyUser } from '../proxy-users.js';
import type { Database, ProxyUser } from '../tables.js';
import { requires } from '../scopes.js';
import { ErrorBody } from './schemas.js';

export interface ProxyUserRouteDeps {
  db: Kysely<Database>;
  /** Live proxy users a tenant may have (PROXY_USERS_PER_TENANT). */
  perTenant: number;
  /** The created and revoked events wait in the outbox: publish them now, not at the next poll. */
  onOrderPlaced: () => void;
}

const ProxyUserSummary = Type.Object({ id: Id, name: ProxyUserName, createdAt: Timestamp });
const toSummary = (u: ProxyUser) => ({ id: u.id, name: u.name, createdAt: u.created_at.toISOString() });

/** A tenant's proxy users (mounted under /v1, behind its key check); every caller sees only its own tenant's. */
export function proxyUserRoutes(deps: ProxyUserRouteDeps): FastifyPluginAsync {
  const { db } = deps;
  return async (plugin) => {
    const v1 = plugin.withTypeProvider<TypeBoxTypeProvider>();

    v1.post(
      '/proxy-users',
      {
        // The answer holds the password, shown once: a retry gets it again, kept sealed meanwhile.
        config: { idempotency: { secretResponse: true } },
        schema: {
          ...requires('proxy'),
          description:
            'creates a proxy user for the load balancer\'s exit-pool front door. The generated password is in this answer only; the proxy username is "<name>-country-<cc>…".',
          // Checked by proxyUserNameIssue, which says which rule a name breaks.
          body: Type.Object({ name: Type.String({ maxLength: 64 }) }, { additionalProperties: false }),
          response: {
            201: Type.Object({ ...ProxyUserSummary.properties, password: Type.String({ description: 'shown once; only its hash is kept' }) }),
            400: ErrorBody,
            403: ErrorBody,
            409: ErrorBody,
          },
        },
      },
      async (request, reply) => {
        const { name } = request.body;
        const issue = proxyUserNameIssue(name);
        if (issue) throw badRequest([{ path: 'name', message: issue }]);
        const created = await createProxyUser(db, callerOf(request).tenantId, name, deps.perTenant);
        if (created === 'name_taken') {
          throw new RequestError(409, 'conflict', `name: a proxy user named "${name}" exists`, [{ path: 'name', message: 'taken' }]);
        }
        if ('limit' in created) {
          throw new RequestError(403, 'limit_reached', `a tenant may have at most ${created.limit} proxy users (PROXY_USERS_PER_TENANT); revoke one first`);
        }
        deps.onOrderPlaced();
        return reply.code(201).send({ ...toSummary(created.user), password: created.password });
      },
    );

    v1.get(
      '/proxy-users',
      {
        schema: {
          ...requires('proxy'),
          description: "the tenant's live proxy users, never their passwords",
          response: { 200: Type.Object({ users: Type.Array(ProxyUserSummary) }) },
        },
      },
      async (request) => ({ users: (await listProxyUsers(db, callerOf(request).tenantId)).map(toSummary) }),
    );

    v1.delete(
      '/proxy-users/:id',
      {
        schema: {
          ...requires('proxy'),
          description: 'revokes a proxy user: load balancers refuse it for new connections within about a second',
          params: Type.Object({ id: Id }),
          response: { 204: Type.Null({ description: 'revoked' }), 404: ErrorBody },
        },
      },
      async (request, reply) => {
        if (!(await revokeProxyUser(db, callerOf(request).tenantId, request.params.id))) throw notFound(`no proxy user ${request.params.id}`);
        deps.onOrderPlaced();
        return reply.code(204).send(null);
      },
    );
  };
}
