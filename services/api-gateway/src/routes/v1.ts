import type { FastifyPluginAsync } from 'fastify';
import type { Kysely } from '@switchyard/db';
import type { Fleet } from '../fleet.js';
import type { PoolGuard } from '../orders/pool-guard.js';
import { installIdempotency } from '../idempotency/plugin.js';
import { assertScopeDeclared, type Auth } from '../http/auth.js';
import type { KeyPolicy } from './v1-keys.js';
import { keyRoutes } from './v1-keys.js';
import type { OrderSecrets } from '../secrets.js';
import type { Database } from '../tables.js';
import { aclRoutes, type DenialReader } from './v1-acl.js';
import { activityRoutes } from './v1-activity.js';
import { fleetRoutes } from './v1-fleet.js';
import { orderRoutes } from './v1-orders.js';
import { proxyUserRoutes } from './v1-proxy-users.js';
import { sleepRoutes } from './v1-sleep.js';
import { tenantRoutes } from './v1-tenants.js';
import { tunnelRoutes } from './v1-tunnels.js';

export interface V1Deps {
  db: Kysely<Database>;
  fleet: Fleet;
  onOrderPlaced: () => void;
  /** PROXY_USERS_PER_TENANT */
  proxyUsersPerTenant: number;
  guard: PoolGuard;
  secrets: OrderSecrets;
  /** SECRETS_KEY (fingerprints, sealed answers) and IDEMPOTENCY_IN_FLIGHT_MS. */
  idempotency: { secretsKey?: Buffer | undefined; inFlightMs: number };
  auth: Auth;
  keys: KeyPolicy;
  aclDenials: DenialReader;
}

/** The native API: every route behind a tenant's API key and the scope it declares. */
export function v1Routes(deps: V1Deps): FastifyPluginAsync {
  const { db } = deps;
  return async (v1) => {
    v1.addHook('onRoute', assertScopeDeclared);
    v1.addHook('onRequest', deps.auth.key);
    // Before the routes: it adds the header to the schema of each route that opts in.
    installIdempotency(v1, { db, ...deps.idempotency });
    // In this order the OpenAPI document lists the paths as it always has.
    await v1.register(tenantRoutes({ db, keys: deps.keys }));
    await v1.register(keyRoutes({ db, policy: deps.keys }));
    await v1.register(orderRoutes(deps));
    await v1.register(fleetRoutes(deps));
    await v1.register(sleepRoutes(deps));
    await v1.register(activityRoutes({ db }));
    await v1.register(proxyUserRoutes({ db, perTenant: deps.proxyUsersPerTenant, onOrderPlaced: deps.onOrderPlaced }));
    await v1.register(aclRoutes({ db, onOrderPlaced: deps.onOrderPlaced, denials: deps.aclDenials }));
    await v1.register(tunnelRoutes(deps));
  };
}
