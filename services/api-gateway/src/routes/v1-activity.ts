import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { ActivityEntry, ActivityKind, Id } from '@switchyard/contracts';
import type { Kysely } from '@switchyard/db';
import { listActivity, toActivityEntry } from '../activity.js';
import { callerOf } from '../http/auth.js';
import { badRequest } from '../http/errors.js';
import type { Database } from '../tables.js';
import { requires } from '../scopes.js';
import { ErrorBody } from './schemas.js';

const KINDS: readonly ActivityKind[] = ActivityKind.anyOf.map((k) => k.const);
const isKind = (k: string): k is ActivityKind => (KINDS as readonly string[]).includes(k);

const ActivityQuery = Type.Object(
  {
    poolId: Type.Optional(Id),
    nodeId: Type.Optional(Id),
    kind: Type.Optional(Type.String({ description: `one kind or several, comma-separated: ${KINDS.join(', ')}` })),
    limit: Type.Integer({ minimum: 1, maximum: 500, default: 50 }),
    before: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,17}$', description: "an entry's id (the previous page's `next`): the page starts after it" })),
  },
  { additionalProperties: false },
);

/** The tenant's activity timeline (mounted under /v1, behind its key check). */
export function activityRoutes(deps: { db: Kysely<Database> }): FastifyPluginAsync {
  return async (plugin) => {
    const v1 = plugin.withTypeProvider<TypeBoxTypeProvider>();

    v1.get(
      '/activity',
      {
        schema: {
          ...requires('read'),
          description: 'what happened to pools and nodes (slept, woke, started, died, ...), newest first',
          querystring: ActivityQuery,
          response: { 200: Type.Object({ items: Type.Array(ActivityEntry), next: Type.Union([Type.String(), Type.Null()]) }), 400: ErrorBody },
        },
      },
      async (request) => {
        const { poolId, nodeId, kind, limit, before } = request.query;
        const kinds = kind?.split(',').map((k) => k.trim());
        const unknown = kinds?.filter((k) => !isKind(k)) ?? [];
        if (unknown.length) throw badRequest([{ path: 'kind', message: `unknown kind ${unknown.map((k) => `"${k}"`).join(', ')} (one of ${KINDS.join(', ')})` }], 'query');
        const page = await listActivity(deps.db, callerOf(request).tenantId, { poolId, nodeId, kinds: kinds?.filter(isKind), limit, before });
        if (page === 'unknown_cursor') throw badRequest([{ path: 'before', message: `no activity entry ${before}` }], 'query');
        return { items: page.items.map(toActivityEntry), next: page.next };
      },
    );
  };
}
