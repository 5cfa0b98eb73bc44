import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { Id, Name } from '@switchyard/contracts';
import type { Kysely } from '@switchyard/db';
import { callerOf } from '../http/auth.js';
import { RequestError } from '../http/errors.js';
import { createTenant } from '../keys.js';
import type { Database } from '../tables.js';
import { ErrorBody } from './schemas.js';

/** Tenants, which only an admin key creates (mounted under /v1, behind its key check). */
export function tenantRoutes(deps: { db: Kysely<Database> }): FastifyPluginAsync {
  return async (plugin) => {
    const v1 = plugin.withTypeProvider<TypeBoxTypeProvider>();

    v1.post(
      '/tenants',
      {
        // The answer holds the tenant's first API key: kept sealed for a retry.
        config: { idempotency: { secretResponse: true } },
        schema: {
          body: Type.Object({ name: Name }, { additionalProperties: false }),
          response: { 201: Type.Object({ id: Id, name: Type.String(), apiKey: Type.String() }), 403: ErrorBody, 409: ErrorBody },
        },
      },
      async (request, reply) => {
        if (callerOf(request).role !== 'admin') throw new RequestError(403, 'forbidden', 'only an admin key can create tenants');
        const created = await createTenant(deps.db, request.body.name);
        if (created === 'exists') throw new RequestError(409, 'conflict', `a tenant named "${request.body.name}" already exists`);
        return reply.code(201).send({ id: created.tenantId, name: request.body.name, apiKey: created.apiKey });
      },
    );
  };
}
