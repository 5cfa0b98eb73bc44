import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { Logger } from 'pino';
import type { Kysely } from '@switchyard/db';
import type { Fleet } from './fleet.js';
import { createAuth, type BasicAccount } from './http/auth.js';
import { createRateLimits, DEFAULT_RATE_LIMITS, type RateLimits } from './http/rate-limits.js';
import { lastUsedRecorder } from './keys.js';
import type { PoolGuard } from './orders/pool-guard.js';
import { installErrorHandler, validatorCompiler } from './http/errors.js';
import { installTracing } from './http/tracing.js';
import { compatRoutes } from './routes/api-compat.js';
import { healthRoutes, reachabilityOf } from './routes/health.js';
import { openapiRoutes } from './routes/openapi.js';
import type { DenialReader } from './routes/v1-acl.js';
import { v1Routes } from './routes/v1.js';
import type { KeyPolicy } from './routes/v1-keys.js';
import { orderSecrets, type OrderSecrets } from './secrets.js';
import type { ServerCatalog } from './server-catalog.js';
import type { Database } from './tables.js';

export interface AppDeps {
  db: Kysely<Database>;
  log: Logger;
  /** Called after an order commits so its command goes out without waiting for a poll. */
  onOrderPlaced: () => void;
  natsConnected: () => boolean;
  /** Questions to the services that own nodes, health and routing. */
  fleet: Fleet;
  /** The VPN server catalog of the /api surface. */
  servers: ServerCatalog;
  /** HTTP Basic account of the /api surface; absent, only API keys open it. */
  basic?: BasicAccount | undefined;
  /** Live proxy users a tenant may have; 20 when unset. */
  proxyUsersPerTenant?: number | undefined;
  /** The pool policy every order that may add pools or nodes passes first. */
  guard: PoolGuard;
  /** Seals a pool's secretEnv (SECRETS_KEY); without it, orders with secrets are refused. */
  secrets?: OrderSecrets | undefined;
  /** SECRETS_KEY keys Idempotency-Key fingerprints and seals answers that hold a secret; in-flight claims older than inFlightMs (60 s unless said) are taken over. */
  idempotency?: { secretsKey?: Buffer | undefined; inFlightMs?: number | undefined } | undefined;
  /** Node's server bounds (fastify requestTimeout, connectionTimeout); both off when absent, as in tests. */
  timeouts?: { requestMs: number; connectionMs: number } | undefined;
  /** Request budgets per key and address; in-memory ones with the defaults when absent, as in tests. */
  rateLimits?: RateLimits | undefined;
  /** Key lifetimes and the per-tenant bound; the config defaults when absent. */
  keys?: KeyPolicy | undefined;
  /** The enforcers' denial counts of a tenant (Redis `acl:denied:<tenantId>`); none when absent, as in tests. */
  aclDenials?: DenialReader | undefined;
}

export const DEFAULT_KEY_POLICY: KeyPolicy = { defaultTtlDays: 90, maxTtlDays: 365, defaultOverlapHours: 24, maxOverlapHours: 720, perTenant: 50 };

/**
 * The HTTP API as a plugin-style factory that never listens: tests use `app.inject`. It only
 * wires; every route lives in `routes/`.
 */
export function buildApp(deps: AppDeps): FastifyInstance {
  const { db, fleet, onOrderPlaced, guard } = deps;
  const app: FastifyInstance = Fastify({
    loggerInstance: deps.log as FastifyBaseLogger,
    bodyLimit: 256 * 1024,
    return503OnClosing: true,
    ...(deps.timeouts ? { requestTimeout: deps.timeouts.requestMs, connectionTimeout: deps.timeouts.connectionMs } : {}),
  });
  app.setValidatorCompiler(validatorCompiler);
  installErrorHandler(app);
  installTracing(app);
  // Registered before the routes so it sees each of them; the document is built from the
  // same schemas that validate requests.
  app.register(swagger, {
    openapi: {
      info: { title: 'Switchyard API', version: '0.1.0', description: 'Orders for exit nodes and sleepy services' },
      components: {
        securitySchemes: {
          apiKey: {
            type: 'http',
            scheme: 'bearer',
            description:
              'an API key of one tenant (or X-API-Key). Each operation names the one scope it requires (also as x-required-scope): read, pools:write, proxy, keys; write implies those four, admin implies every scope in every tenant',
          },
          basic: { type: 'http', scheme: 'basic', description: '/api only: COMPAT_API_USERNAME and COMPAT_API_PASSWORD' },
        },
      },
      security: [{ apiKey: [] }, { basic: [] }],
    },
  });
  app.register(openapiRoutes);
  // The UI fetches its own copy of the document (/docs/json), built from the same routes.
  app.register(swaggerUi, { routePrefix: '/docs' });

  const limits = deps.rateLimits ?? createRateLimits(DEFAULT_RATE_LIMITS);
  const auth = createAuth({ db, limits, used: lastUsedRecorder(db, deps.log) });
  const keys = deps.keys ?? DEFAULT_KEY_POLICY;
  // Every request but the liveness probe spends its source address's budget, keyed or not.
  app.addHook('onRequest', async (request, reply) => {
    if (request.routeOptions.url === '/healthz') return;
    await limits.address(request.ip, reply);
  });

  const reachability = reachabilityOf(db, deps.natsConnected);
  app.register(healthRoutes(reachability));
  app.register(compatRoutes({ db, fleet, servers: deps.servers, basic: deps.basic, onOrderPlaced, guard, health: reachability, auth }), { prefix: '/api' });
  app.register(
    v1Routes({
      db,
      fleet,
      onOrderPlaced,
      guard,
      secrets: deps.secrets ?? orderSecrets(undefined),
      proxyUsersPerTenant: deps.proxyUsersPerTenant ?? 20,
      auth,
      keys,
      idempotency: { secretsKey: deps.idempotency?.secretsKey, inFlightMs: deps.idempotency?.inFlightMs ?? 60_000 },
      aclDenials: deps.aclDenials ?? (async () => ({})),
    }),
    {
      prefix: '/v1',
    },
  );
  return app;
}
