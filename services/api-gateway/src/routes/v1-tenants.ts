import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { Id, Name } from '@switchyard/contracts';
import type { Kysely } from '@switchyard/db';
import { RequestError } from '../http/errors.js';
import { createTenant } from '../keys.js';
import type { Database } from '../tables.js';
import { requires } from '../scopes.js';
import { ErrorBody } from './schemas.js';

/** Tenants, which only an admin key creates (mounted under /v1, behind its key check). The first key holds `write` and expires as any new key. */
export function tenantRoutes(deps: { db: Kysely<Database>; keys: { defaultTtlDays: number } }): FastifyPluginAsync {
  return async (plugin) => {
    const v1 = plugin.withTypeProvider<TypeBoxTypeProvider>();

    v1.post(
      '/tenants',
      {
        // The answer holds the tenant's first API key: kept sealed for a retry.
        config: { idempotency: { secretResponse: true } },
        schema: {
          ...requires('admin'),
          body: Type.Object({ name: Name }, { additionalProperties: false }),
          response: { 201: Type.Object({ id: Id, name: Type.String(), apiKey: Type.String() }), 403: ErrorBody, 409: ErrorBody },
        },
      },
      async (request, reply) => {
        const expiresAt = new Date(Date.now() + deps.keys.defaultTtlDays * 86_400_000);
        const created = await createTenant(deps.db, request.body.name, expiresAt);
        if (created === 'exists') throw new RequestError(409, 'conflict', `a tenant named "${request.body.name}" already exists`);
        return reply.code(201).send({ id: created.tenantId, name: request.body.name, apiKey: created.apiKey });
      },
    );
  };
}
