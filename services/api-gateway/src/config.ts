import Type from 'typebox';
import { CommonEnv, DatabaseEnv, env, PoolMaximaEnv } from '@switchyard/config';
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
  // The pool policy of member keys (orders/pool-policy.ts); admin keys are exempt except from the POOL_MAX_* maxima.
  /** The image exit pools run when their spec names none (exit-node-manager's variable of the same name). */
  EXIT_NODE_IMAGE: env.string({ minLength: 1, default: 'switchyard/exit-node:dev' }),
  /** Comma-separated image refs a member's pool may run, compared as written; EXIT_NODE_IMAGE alone when unset. */
  POOL_IMAGES: Type.Optional(env.string({ minLength: 1 })),
  /** Comma-separated tenant ids or names that may ask for network "host", besides the admin tenant. */
  HOST_NETWORK_TENANTS: Type.Optional(env.string({ minLength: 1 })),
  ...PoolMaximaEnv,
  TENANT_MAX_POOLS: env.int({ minimum: 1, maximum: 100_000, default: 20 }),
  /** Bound on the sum of nodes.max over a tenant's pools. */
  TENANT_MAX_NODES: env.int({ minimum: 1, maximum: 1_000_000, default: 50 }),
  /** Nodes a tenant may add per minute: node.add, and the nodes.min of a new pool or a scale-up. */
  TENANT_NODE_ADDS_PER_MINUTE: env.int({ minimum: 1, maximum: 100_000, default: 30 }),
  /** A client must have sent its whole request (headers and body) within this: a slow sender cannot hold a connection open. */
  HTTP_REQUEST_TIMEOUT_MS: env.int({ minimum: 1000, maximum: 600_000, default: 30_000 }),
  /** A connection with nothing sent either way for this long is closed; above SPEEDTEST_TIMEOUT_MS, so a speed test is answered. */
  HTTP_CONNECTION_TIMEOUT_MS: env.int({ minimum: 1000, maximum: 3_600_000, default: 120_000 }),
  /** base64 of 32 bytes (openssl rand -base64 32) sealing pools' secretEnv; the same on exit-node-manager. Unset, orders with secrets are refused. */
  SECRETS_KEY: Type.Optional(env.string({ minLength: 1 })),
  /**
   * An order accepted or in progress with no change for this long is failed (orders/sweeper.ts).
   * Keep it well above a minute in production: long work (a drain) reports progress once a minute.
   */
  // API keys (keys.ts, routes/v1-keys.ts).
  /** Lifetime of a new key when the caller names none. */
  API_KEY_DEFAULT_TTL_DAYS: env.int({ minimum: 1, maximum: 3650, default: 90 }),
  /** The longest lifetime a caller may ask for (expiresAt). */
  API_KEY_MAX_TTL_DAYS: env.int({ minimum: 1, maximum: 3650, default: 365 }),
  /** How long a rotated key keeps working when the caller names no overlapUntil. */
  API_KEY_ROTATION_OVERLAP_HOURS: env.int({ minimum: 0, maximum: 8760, default: 24 }),
  /** The longest overlap a caller may ask for. */
  API_KEY_MAX_OVERLAP_HOURS: env.int({ minimum: 0, maximum: 8760, default: 720 }),
  /** Live (not revoked, not expired) keys one tenant may have. */
  API_KEYS_PER_TENANT: env.int({ minimum: 1, maximum: 100_000, default: 50 }),
  // Request budgets (http/rate-limits.ts), fixed windows in Redis shared by every gateway process.
  /** Requests one API key (or the compat Basic account) may make per window. */
  API_RATE_LIMIT_PER_KEY: env.int({ minimum: 1, maximum: 100_000_000, default: 12_000 }),
  /** Requests one source address may make per window, with or without a key. */
  API_RATE_LIMIT_PER_ADDRESS: env.int({ minimum: 1, maximum: 100_000_000, default: 30_000 }),
  API_RATE_LIMIT_WINDOW_SEC: env.int({ minimum: 1, maximum: 86_400, default: 60 }),
  /** Failed authentications (unknown, revoked or expired key, wrong Basic password) per address; then it is refused until the window ends. */
  API_AUTH_FAILURES_PER_ADDRESS: env.int({ minimum: 1, maximum: 1_000_000, default: 30 }),
  API_AUTH_FAILURE_WINDOW_SEC: env.int({ minimum: 1, maximum: 86_400, default: 300 }),
  /** Redis key prefix of the budgets: gateways sharing a prefix share budgets (one deployment, one prefix). */
  API_RATE_LIMIT_PREFIX: env.string({ minLength: 1, default: 'switchyard:rl' }),
  ORDER_STALE_AFTER_MS: env.int({ minimum: 1000, maximum: 7 * 24 * 3_600_000, default: 10 * 60_000 }),
  /**
   * A request holding an Idempotency-Key for longer than this is taken to have crashed or hung:
   * a retry with the same key and request takes the key over. Keep it above the slowest request.
   */
  IDEMPOTENCY_IN_FLIGHT_MS: env.int({ minimum: 1000, maximum: 3_600_000, default: 60_000 }),
});
