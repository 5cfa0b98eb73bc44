import type { FastifyPluginAsync } from 'fastify';
import { sql, type Kysely } from '@switchyard/db';
import type { Database } from '../tables.js';

export interface Reachability {
  database: boolean;
  nats: boolean;
}

/** Whether the database answers now and the NATS connection is up. */
export function reachabilityOf(db: Kysely<Database>, natsConnected: () => boolean): () => Promise<Reachability> {
  return async () => ({
    database: await sql`select 1`.execute(db).then(
      () => true,
      () => false,
    ),
    nats: natsConnected(),
  });
}

/** The native liveness probe: 503 while the database or NATS is away. */
export function healthRoutes(reachability: () => Promise<Reachability>): FastifyPluginAsync {
  return async (plugin) => {
    // For probes, not clients: left out of the OpenAPI document.
    plugin.get('/healthz', { schema: { hide: true } }, async (_request, reply) => {
      const { database, nats } = await reachability();
      const ok = database && nats;
      return reply.code(ok ? 200 : 503).send({ status: ok ? 'ok' : 'degraded', database, nats });
    });
  };
}
