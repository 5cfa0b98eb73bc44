#!/usr/bin/env node
import { createDb, migrateToLatest } from '@switchyard/db';
import { parseSecretsKey } from '@switchyard/secrets';
import { AclSnapshotPages, runService } from '@switchyard/service-kit';
import { policyViews } from './acl-policies.js';
import { buildApp } from './app.js';
import { ApiGatewayEnv } from './config.js';
import { createFleet } from './fleet.js';
import { createRateLimits } from './http/rate-limits.js';
import { gatewayConsumers } from './handlers.js';
import { ensureAdmin } from './keys.js';
import { migrations } from './migrations.js';
import { createPoolGuard, nodeAddLimiter } from './orders/pool-guard.js';
import { limitsOf } from './orders/pool-policy.js';
import { orderSecrets } from './secrets.js';
import { startOrderSweeper } from './orders/sweeper.js';
import { startIdempotencySweeper } from './idempotency/sweeper.js';
import { startOutboxRelay } from './outbox.js';
import { proxyUserSnapshot } from './proxy-users.js';
import { loadServerCatalog } from './server-catalog.js';
import type { Database } from './tables.js';

/** A config problem found after the schema check: same exit code, same "VARIABLE: reason" line. */
function exitConfig(log: { error(o: object, m: string): void }, variable: string, reason: string): never {
  log.error({ variable }, `${variable}: ${reason}`);
  process.stderr.write(`api-gateway: bad configuration\n  ${variable}: ${reason}\n`);
  process.exit(78);
}

function parseKeyOrExit(log: { error(o: object, m: string): void }, value: string): Buffer {
  try {
    return parseSecretsKey(value);
  } catch (err) {
    return exitConfig(log, 'SECRETS_KEY', (err as Error).message);
  }
}

/** The enforcers count denials in `acl:denied:<tenantId>` (field: acls index or `default`); an unreadable Redis reads as null. */
function aclDenialReader(redis: { hgetall(key: string): Promise<Record<string, string>> }, log: { warn(o: object, m: string): void }) {
  return async (tenantId: string): Promise<Record<string, number> | null> => {
    try {
      const fields = await redis.hgetall(`acl:denied:${tenantId}`);
      const out: Record<string, number> = {};
      for (const [field, count] of Object.entries(fields)) {
        const n = Number(count);
        if (/^(?:[0-9]{1,4}|default)$/.test(field) && Number.isSafeInteger(n) && n >= 0) out[field] = n;
      }
      return out;
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'acl denials unreadable');
      return null;
    }
  };
}

await runService({
  name: 'api-gateway',
  description: 'HTTP API: tenants, API keys, orders and the activity timeline; publishes commands through an outbox',
  env: ApiGatewayEnv,
  // For the request budgets and the node-addition rate, which every gateway process shares.
  redis: true,
  async start({ config, log, bus, service, natsConnected, onShutdown, consume, redis }) {
    if ((config.COMPAT_API_USERNAME === undefined) !== (config.COMPAT_API_PASSWORD === undefined)) {
      exitConfig(log, config.COMPAT_API_USERNAME ? 'COMPAT_API_PASSWORD' : 'COMPAT_API_USERNAME', 'set both COMPAT_API_USERNAME and COMPAT_API_PASSWORD, or neither');
    }
    const secretsKey = config.SECRETS_KEY === undefined ? undefined : parseKeyOrExit(log, config.SECRETS_KEY);
    const secrets = orderSecrets(secretsKey);
    if (!config.SECRETS_KEY) log.warn('SECRETS_KEY is not set: orders of pools with secretEnv will be refused');
    if (config.HTTP_CONNECTION_TIMEOUT_MS <= config.SPEEDTEST_TIMEOUT_MS) {
      exitConfig(log, 'HTTP_CONNECTION_TIMEOUT_MS', `must exceed SPEEDTEST_TIMEOUT_MS (${config.SPEEDTEST_TIMEOUT_MS}): a speed test's connection is quiet until it is answered`);
    }
    if (config.API_KEY_DEFAULT_TTL_DAYS > config.API_KEY_MAX_TTL_DAYS)
      exitConfig(log, 'API_KEY_DEFAULT_TTL_DAYS', `must not exceed API_KEY_MAX_TTL_DAYS (${config.API_KEY_MAX_TTL_DAYS})`);
    if (config.API_KEY_ROTATION_OVERLAP_HOURS > config.API_KEY_MAX_OVERLAP_HOURS) {
      exitConfig(log, 'API_KEY_ROTATION_OVERLAP_HOURS', `must not exceed API_KEY_MAX_OVERLAP_HOURS (${config.API_KEY_MAX_OVERLAP_HOURS})`);
    }
    const servers = await loadServerCatalog(config.VPN_SERVERS_FILE).catch((err: Error) => exitConfig(log, 'VPN_SERVERS_FILE', err.message));

    const db = createDb<Database>(config.DATABASE_URL, { applicationName: 'api-gateway' });
    onShutdown(() => db.destroy());
    await migrateToLatest(db, { migrations, table: 'api_gateway_migrations' });
    const adminTenantId = await ensureAdmin(db, config.ADMIN_TENANT_NAME, config.ADMIN_API_KEY);
    const compatTenantId = config.COMPAT_API_TENANT_ID ?? adminTenantId;
    if (config.COMPAT_API_TENANT_ID) {
      const tenant = await db.selectFrom('tenants').select('id').where('id', '=', config.COMPAT_API_TENANT_ID).executeTakeFirst();
      if (!tenant) exitConfig(log, 'COMPAT_API_TENANT_ID', `no tenant ${config.COMPAT_API_TENANT_ID}`);
    }

    const relay = startOutboxRelay({ db, bus, log, pollMs: config.OUTBOX_POLL_MS });
    onShutdown(() => relay.stop());
    consume(gatewayConsumers(db));
    startOrderSweeper({ db, log, staleAfterMs: config.ORDER_STALE_AFTER_MS, onShutdown });
    startIdempotencySweeper({ db, log, onShutdown });
    bus.serve(service, 'proxyuser.req.snapshot', (p) => proxyUserSnapshot(db, p));
    const aclPages = new AclSnapshotPages({
      pageBytes: () => (bus.nc.info?.max_payload ?? 1024 * 1024) - 8192,
      // A stored document fails its schema only if the contract narrowed since it was put.
      onSkip: (row) => log.error({ tenantId: row.tenantId, reason: row.reason }, 'acl.req.snapshot: a policy left out of the snapshot'),
    });
    bus.serve(service, 'acl.req.snapshot', (p) => aclPages.serve(p, () => policyViews(db, p.tenantId)));

    const fleet = createFleet({ bus, natsConnected, timeoutMs: config.SERVICE_REQUEST_TIMEOUT_MS, speedTestTimeoutMs: config.SPEEDTEST_TIMEOUT_MS });
    const basic =
      config.COMPAT_API_USERNAME && config.COMPAT_API_PASSWORD
        ? { username: config.COMPAT_API_USERNAME, password: config.COMPAT_API_PASSWORD, tenantId: compatTenantId }
        : undefined;
    const guard = createPoolGuard({ db, fleet, limits: limitsOf(config), limiter: nodeAddLimiter(config.TENANT_NODE_ADDS_PER_MINUTE, redis) });
    const app = buildApp({
      db,
      log,
      onOrderPlaced: () => relay.kick(),
      natsConnected,
      fleet,
      servers,
      basic,
      guard,
      secrets,
      idempotency: { secretsKey, inFlightMs: config.IDEMPOTENCY_IN_FLIGHT_MS },
      timeouts: { requestMs: config.HTTP_REQUEST_TIMEOUT_MS, connectionMs: config.HTTP_CONNECTION_TIMEOUT_MS },
      proxyUsersPerTenant: config.PROXY_USERS_PER_TENANT,
      aclDenials: redis ? aclDenialReader(redis, log) : undefined,
      keys: {
        defaultTtlDays: config.API_KEY_DEFAULT_TTL_DAYS,
        maxTtlDays: config.API_KEY_MAX_TTL_DAYS,
        defaultOverlapHours: config.API_KEY_ROTATION_OVERLAP_HOURS,
        maxOverlapHours: config.API_KEY_MAX_OVERLAP_HOURS,
        perTenant: config.API_KEYS_PER_TENANT,
      },
      rateLimits: createRateLimits(
        {
          perKey: config.API_RATE_LIMIT_PER_KEY,
          perAddress: config.API_RATE_LIMIT_PER_ADDRESS,
          windowSec: config.API_RATE_LIMIT_WINDOW_SEC,
          authFailuresPerAddress: config.API_AUTH_FAILURES_PER_ADDRESS,
          authFailureWindowSec: config.API_AUTH_FAILURE_WINDOW_SEC,
          prefix: config.API_RATE_LIMIT_PREFIX,
        },
        redis,
      ),
    });
    // Registered last so it runs first: stop taking requests before the relay and db close.
    onShutdown(() => app.close());
    const address = await app.listen({ host: config.API_HOST, port: config.API_PORT });
    log.info({ address }, `Switchyard API listening on ${address}`);
  },
});
