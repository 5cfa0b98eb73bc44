import type { FastifyPluginAsync } from 'fastify';

/**
 * The OpenAPI document, built by @fastify/swagger from the same schemas that validate
 * requests. It needs the swagger plugin registered on the root before any route.
 */
export const openapiRoutes: FastifyPluginAsync = async (plugin) => {
  plugin.get('/openapi.json', { schema: { hide: true } }, async () => plugin.swagger());
};
