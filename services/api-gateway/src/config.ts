import Type from 'typebox';
import { CommonEnv, DatabaseEnv, env } from '@switchyard/config';
import { Id } from '@switchyard/contracts';

export const ApiGatewayEnv = Type.Object({
  ...CommonEnv,
  ...DatabaseEnv,
  API_HOST: env.string({ default: '127.0.0.1' }),
  API_PORT: env.port(8080),
  ADMIN_API_KEY: env.string({ minLength: 24 }),
  ADMIN_TENANT_NAME: env.string({ default: 'admin' }),
  OUTBOX_POLL_MS: env.int({ minimum: 10, maximum: 60_000, default: 500 }),
  /** HTTP Basic credentials of the /api compatibility surface; both or neither. */
  COMPAT_API_USERNAME: Type.Optional(env.string({ minLength: 1 })),
  COMPAT_API_PASSWORD: Type.Optional(env.string({ minLength: 12 })),
  /** The tenant Basic callers act for; the admin tenant when unset. */
  COMPAT_API_TENANT_ID: Type.Optional(Type.String({ ...Id, description: 'a tenant id (UUID)' })),
  /** JSON object of lower-case country code → VPN server hostnames; a small built-in list when unset. */
  VPN_SERVERS_FILE: Type.Optional(env.string({ minLength: 1 })),
  /** Bound on a query to another service (node lists, health, counters, logs). */
  SERVICE_REQUEST_TIMEOUT_MS: env.int({ minimum: 50, maximum: 60_000, default: 3000 }),
  /** Live proxy users (credentials of the load balancer's proxy ports) one tenant may have. */
  PROXY_USERS_PER_TENANT: env.int({ minimum: 0, maximum: 10_000, default: 20 }),
  SPEEDTEST_TIMEOUT_MS: env.int({ minimum: 1000, maximum: 600_000, default: 60_000 }),
});
