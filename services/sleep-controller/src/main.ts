#!/usr/bin/env node
import type { Payload } from '@switchyard/contracts';
import { createDb, migrateToLatest } from '@switchyard/db';
import { Resync, runService } from '@switchyard/service-kit';
import { SleepControllerEnv } from './config.js';
import { createHandlers } from './handlers.js';
import { IdleDetector } from './idle-detector.js';
import { migrations } from './migrations.js';
import { createPolicyStore, poolKey } from './policy-store.js';
import { sleepIdleNodes } from './sleeper.js';
import type { Database } from './tables.js';
import { startTicker } from './ticker.js';

const SNAPSHOT_TIMEOUT_MS = 5000;
// ENM stops a node within its stop grace period (10 s); a sleep not done well after that was lost.
const PENDING_TTL_MS = 60_000;

await runService({
  name: 'sleep-controller',
  description: 'idle detection and sleep policy per pool',
  env: SleepControllerEnv,
  async start({ config, log, bus, nc, service, onShutdown, supervise }) {
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

    async function snapshot(tenantId?: string) {
      const requestedAt = Date.now();
      const reply = await bus.request('pool.req.snapshot', tenantId ? { tenantId } : {}, { timeoutMs: SNAPSHOT_TIMEOUT_MS });
      detector.replace(reply, requestedAt, Date.now(), tenantId);
      return { reply, requestedAt };
    }

    const handlers = createHandlers({ ...sleeper, detector, policies, refresh: async (tenantId) => void (await snapshot(tenantId)) });

    const resync = new Resync(
      async () => {
        const { reply, requestedAt } = await snapshot();
        await policies.load();
        // Pools whose pool.evt.changed was missed still get the policy of their spec.
        for (const pool of reply.pools) if (pool.spec.sleep) await handlers.seedPolicy(pool.tenantId, pool.poolId, pool.spec.sleep);
        const pruned = await policies.prune(new Set(reply.pools.map((p) => poolKey(p.tenantId, p.poolId))), new Date(requestedAt));
        log.debug({ pools: reply.pools.length, nodes: reply.nodes.length, pruned }, 'pools and nodes rebuilt');
      },
      {
        periodMs: config.SLEEP_RESYNC_MS,
        retryMs: 1000,
        onError: (err) => log.warn({ err: err.message }, 'could not rebuild pools and nodes from pool.req.snapshot'),
      },
    );
    onShutdown(() => resync.stop());

    // Subscribed before the first snapshot, so nothing that happens while it travels is lost.
    const now = () => Date.now();
    supervise('pool.evt.changed', bus.subscribe('pool.evt.changed', handlers.poolChanged));
    supervise('pool.evt.deleted', bus.subscribe('pool.evt.deleted', handlers.poolDeleted));
    supervise('node.evt.started', bus.subscribe('node.evt.started', async (e) => detector.nodeStarted(e, now())));
    supervise('node.evt.stopped', bus.subscribe('node.evt.stopped', async (e) => detector.nodeStopped(e, now())));
    supervise('node.evt.died', bus.subscribe('node.evt.died', async (e) => detector.nodeDied(e, now())));
    supervise('node.evt.removed', bus.subscribe('node.evt.removed', async (e) => detector.nodeRemoved(e, now())));
    supervise('node.evt.stats', bus.subscribe('node.evt.stats', async (e) => detector.sample(e)));
    supervise('activator.evt.woke', bus.subscribe('activator.evt.woke', async (e) => detector.touched(e.nodeId, now())));

    void (async () => {
      for await (const s of nc.status()) if (s.type === 'reconnect') resync.request();
    })();
    resync.request();
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
