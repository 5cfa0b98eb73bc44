#!/usr/bin/env node
import type { Payload } from '@switchyard/contracts';
import { createDb, migrateToLatest } from '@switchyard/db';
import { requestPoolSnapshot, runService } from '@switchyard/service-kit';
import { SleepControllerEnv } from './config.js';
import { createHandlers } from './handlers.js';
import { IdleDetector } from './idle-detector.js';
import { migrations } from './migrations.js';
import { createPolicyStore } from './policy-store.js';
import { sleepIdleNodes } from './sleeper.js';
import { createSnapshots } from './snapshots.js';
import type { Database } from './tables.js';
import { startTicker } from './ticker.js';

const SNAPSHOT_TIMEOUT_MS = 5000;
// ENM stops a node within its stop grace period (10 s); a sleep not done well after that was lost.
const PENDING_TTL_MS = 60_000;

await runService({
  name: 'sleep-controller',
  description: 'idle detection and sleep policy per pool',
  env: SleepControllerEnv,
  async start({ config, log, bus, service, onShutdown, supervise, follow }) {
    const db = createDb<Database>(config.DATABASE_URL, { applicationName: 'sleep-controller' });
    onShutdown(() => db.destroy());
    await migrateToLatest(db, { migrations, table: 'sleep_controller_migrations' });

    const policies = createPolicyStore(db);
    await policies.load();
    const detector = new IdleDetector({ staleMs: config.SLEEP_STATS_STALE_MS, pendingTtlMs: PENDING_TTL_MS });
    const sleeper = {
      arm: (request: Payload<'activator.req.arm'>) => bus.request('activator.req.arm', request, { timeoutMs: config.SLEEP_ARM_TIMEOUT_MS }),
      publish: bus.publish,
      log,
    };

    const snapshots = createSnapshots({
      request: (p) => requestPoolSnapshot((q) => bus.request('pool.req.snapshot', q, { timeoutMs: SNAPSHOT_TIMEOUT_MS }), p),
      detector,
      policies,
      log,
    });
    const handlers = createHandlers({ ...sleeper, detector, policies, refresh: snapshots.refresh });
    const resync = follow({
      what: 'pools and nodes',
      events: handlers.events,
      rebuild: () => snapshots.rebuild(handlers.seedPolicy),
      periodMs: config.SLEEP_RESYNC_MS,
    });
    // Ready once the first rebuild was tried: started with the manager down, it fills in later.
    await resync.settled();

    bus.serve(service, 'sleep.req.policy', async (p) => ({
      policies: (await policies.list(p.tenantId, p.poolId)).map((s) => ({ ...s, updatedAt: s.updatedAt.toISOString() })),
    }));

    const ticker = startTicker({
      // At least every tick, and four times per shortest window, so a node sleeps within a quarter window of its due time.
      periodMs: () => Math.min(config.SLEEP_TICK_MS, (policies.shortestWindowSec() ?? Infinity) * 250),
      run: () => sleepIdleNodes({ ...sleeper, detector, policies, retryMs: config.SLEEP_RETRY_MS }, Date.now()),
      onError: (err) => log.warn({ err: err instanceof Error ? err.message : String(err) }, 'idle sweep failed'),
    });
    onShutdown(() => ticker.stop());

    // Registered last so it stops first: finish the commands in hand while db and NATS are up.
    supervise('commands', bus.consume('sleepControllerCommands', handlers.commands, { concurrency: 4 }));
  },
});
