#!/usr/bin/env node
import { createDb, migrateToLatest } from '@switchyard/db';
import { runService } from '@switchyard/service-kit';
import { buildApp } from './app.js';
import { ApiGatewayEnv } from './config.js';
import { ensureAdmin } from './keys.js';
import { migrations } from './migrations.js';
import { orderEventHandlers } from './order-events.js';
import { startOutboxRelay } from './outbox.js';
import type { Database } from './tables.js';

await runService({
  name: 'api-gateway',
  description: 'HTTP API: tenants, API keys and orders; publishes commands through an outbox',
  env: ApiGatewayEnv,
  async start({ config, log, bus, natsConnected, onShutdown, supervise }) {
    const db = createDb<Database>(config.DATABASE_URL, { applicationName: 'api-gateway' });
    onShutdown(() => db.destroy());
    await migrateToLatest(db, { migrations, table: 'api_gateway_migrations' });
    await ensureAdmin(db, config.ADMIN_TENANT_NAME, config.ADMIN_API_KEY);

    const relay = startOutboxRelay({ db, bus, log, pollMs: config.OUTBOX_POLL_MS });
    onShutdown(() => relay.stop());
    supervise('order events', bus.consume('apiGatewayOrders', orderEventHandlers(db), { concurrency: 8 }));

    const app = buildApp({ db, bus, log, onOrderPlaced: () => relay.kick(), natsConnected });
    // Registered last so it runs first: stop taking requests before the relay and db close.
    onShutdown(() => app.close());
    const address = await app.listen({ host: config.API_HOST, port: config.API_PORT });
    log.info({ address }, `Switchyard API listening on ${address}`);
  },
});
