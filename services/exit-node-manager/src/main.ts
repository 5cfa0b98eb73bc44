#!/usr/bin/env node
import { createDb, migrateToLatest } from '@switchyard/db';
import { createDockerClient } from '@switchyard/docker';
import { Resync, runService, SnapshotPages } from '@switchyard/service-kit';
import { ExitNodeManagerEnv, resourcePolicy } from './config.js';
import { watchDockerEvents } from './docker-events.js';
import { createDockerOps, DockerOpError } from './docker-ops.js';
import { createHandlers, type ServedSubject } from './handlers.js';
import { createHealer } from './healer.js';
import { DEFAULT_HEAL_POLICY } from './heal-policy.js';
import { pickFreePort } from './host-ports.js';
import { redisHotState, redisStatsStore } from './hot-state.js';
import { createIntents } from './intents.js';
import { createManager } from './manager.js';
import { migrations } from './migrations.js';
import { sqlRepository } from './repository.js';
import { createStatsSampler } from './stats-sampler.js';
import { reportSkippedRows } from './views.js';
import type { Database } from './tables.js';

await runService({
  name: 'exit-node-manager',
  description: 'reconciles pools to Docker containers, carries out node commands, heals dead nodes and samples their stats',
  env: ExitNodeManagerEnv,
  redis: true,
  async start({ config, log, bus, service, redis, onShutdown, supervise }) {
    const db = createDb<Database>(config.DATABASE_URL, { applicationName: 'exit-node-manager' });
    onShutdown(() => db.destroy());
    await migrateToLatest(db, { migrations, table: 'exit_node_manager_migrations' });
    const repo = sqlRepository(db);

    const client = createDockerClient({ DOCKER_HOST: config.DOCKER_HOST });
    const intents = createIntents();
    const docker = intents.track(createDockerOps(client));
    // A missing engine fails orders with a reason the tenant sees; the service itself still
    // starts so node.req.list keeps answering, and the event watch connects when it can.
    try {
      await docker.ping();
    } catch (err) {
      if (!(err instanceof DockerOpError)) throw err;
      log.warn({ err: err.message }, 'Docker is not reachable; orders will fail until it is');
    }

    const stats = redisStatsStore(redis, log);
    const manager = createManager({
      repo,
      docker,
      bus,
      hotState: redisHotState(redis, log),
      stats,
      log,
      config: {
        exitNodeImage: config.EXIT_NODE_IMAGE,
        publishHost: config.NODE_PUBLISH_HOST,
        addedPoolNetwork: config.EXIT_NODE_NETWORK,
        resources: resourcePolicy(config),
        outboundSubnets: config.EXIT_NODE_OUTBOUND_SUBNETS,
      },
      pickPort: pickFreePort,
      isExpected: intents.isExpected,
    });

    const healer = createHealer(
      manager,
      { ...DEFAULT_HEAL_POLICY, baseDelayMs: config.HEAL_BASE_DELAY_MS, maxRestarts: config.HEAL_MAX_RESTARTS, windowMs: config.HEAL_WINDOW_MS },
      log,
    );
    onShutdown(() => healer.stop());

    const sampler = createStatsSampler(client, {
      intervalMs: config.STATS_INTERVAL_MS,
      async onSample(node, metrics) {
        await stats.write(node.nodeId, metrics);
        const { at, ...figures } = metrics;
        await bus.publish('node.evt.stats', { ...node, at, ...figures }).catch((err: Error) => log.debug({ err: err.message }, 'node.evt.stats not published'));
      },
      onError: (containerId, reason) => log.debug({ containerId, reason }, 'stats stream ended'),
    });
    onShutdown(async () => sampler.stop());

    const skipped = reportSkippedRows(bus.deadLetter.bind(bus), log);
    // A page is as large as the NATS server lets one message be, less room for its headers.
    const snapshots = { pages: new SnapshotPages({ pageBytes: () => (bus.nc.info?.max_payload ?? 1024 * 1024) - 8192, onSkip: skipped }), skipped };
    const handlers = createHandlers({ manager, healer, sampler, repo, stats, docker, snapshots, publish: bus.publish.bind(bus), isExpected: intents.isExpected, log });
    const serve = <S extends ServedSubject>(subject: S) => bus.serve(service, subject, handlers.requests[subject]);
    for (const subject of Object.keys(handlers.requests) as ServedSubject[]) serve(subject);

    // Whatever happened while the event stream was down is only found by looking: every
    // (re)connection asks for a reconciliation, one at a time, again after one in progress.
    const reconciliation = new Resync(
      async () => {
        sampler.sync(await manager.reconcileAll());
        log.info('reconciled every pool with the Docker engine');
      },
      // No retry of its own, as before: a failed reconciliation runs again on the next reconnect.
      { onError: (err) => log.warn({ err }, 'reconciliation failed; it runs again on the next reconnect') },
    );
    onShutdown(() => reconciliation.stop());
    const events = watchDockerEvents(client, {
      onEvent: handlers.containerEvent,
      onConnect: () => reconciliation.request(),
      onDisconnect: (reason) => log.warn({ reason }, 'Docker event stream lost; reconnecting'),
    });
    onShutdown(() => events.stop());

    // Registered last so it stops first: finish the commands in hand while db and NATS are up.
    supervise('commands', bus.consume('exitNodeManagerCommands', handlers.commands, { concurrency: 4 }));
  },
});
