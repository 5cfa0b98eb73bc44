#!/usr/bin/env node
import { createDb, migrateToLatest } from '@switchyard/db';
import { createDockerClient, Labels } from '@switchyard/docker';
import { runService } from '@switchyard/service-kit';
import { ExitNodeManagerEnv } from './config.js';
import { watchDockerEvents, type ContainerEvent } from './docker-events.js';
import { createDockerOps, DockerOpError } from './docker-ops.js';
import { createManager } from './handlers.js';
import { createHealer } from './healer.js';
import { DEFAULT_HEAL_POLICY } from './heal-policy.js';
import { pickFreePort } from './host-ports.js';
import { redisHotState, redisStatsStore } from './hot-state.js';
import { createIntents } from './intents.js';
import { migrations } from './migrations.js';
import { createStatsSampler } from './stats-sampler.js';
import type { Database } from './tables.js';
import { listNodeViews, nodeLogs, poolSnapshot } from './views.js';

await runService({
  name: 'exit-node-manager',
  description: 'reconciles pools to Docker containers, carries out node commands, heals dead nodes and samples their stats',
  env: ExitNodeManagerEnv,
  redis: true,
  async start({ config, log, bus, service, redis, onShutdown, supervise }) {
    const db = createDb<Database>(config.DATABASE_URL, { applicationName: 'exit-node-manager' });
    onShutdown(() => db.destroy());
    await migrateToLatest(db, { migrations, table: 'exit_node_manager_migrations' });

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
      db,
      docker,
      bus,
      hotState: redisHotState(redis, log),
      stats,
      log,
      config: { exitNodeImage: config.EXIT_NODE_IMAGE, publishHost: config.NODE_PUBLISH_HOST, addedPoolNetwork: config.EXIT_NODE_NETWORK },
      pickPort: pickFreePort,
      isExpected: intents.isExpected,
    });

    bus.serve(service, 'node.req.list', (p) => listNodeViews(db, stats, p));
    bus.serve(service, 'pool.req.snapshot', (p) => poolSnapshot(db, stats, p));
    bus.serve(service, 'node.req.logs', (p) => nodeLogs(db, docker, p));

    const healer = createHealer(
      manager,
      {
        ...DEFAULT_HEAL_POLICY,
        baseDelayMs: config.HEAL_BASE_DELAY_MS,
        maxRestarts: config.HEAL_MAX_RESTARTS,
        windowMs: config.HEAL_WINDOW_MS,
      },
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

    // oom comes just before the die it causes.
    const oomKilled = new Set<string>();
    const warn = (what: string) => (err: unknown) => log.warn({ err: err instanceof Error ? err.message : String(err) }, what);

    function onEvent(e: ContainerEvent) {
      const tenantId = e.labels[Labels.tenant] ?? '';
      const nodeId = e.labels[Labels.node] ?? '';
      switch (e.action) {
        case 'oom':
          if (oomKilled.size > 10_000) oomKilled.clear();
          oomKilled.add(e.containerId);
          return;
        case 'die': {
          sampler.untrack(e.containerId);
          const oom = oomKilled.delete(e.containerId);
          if (intents.isExpected(e.containerId)) return;
          const death = { tenantId, nodeId, containerId: e.containerId, exitCode: e.exitCode ?? -1, oomKilled: oom, when: e.timeNano };
          void manager
            .nodeDied(death)
            .then((ours) => ours && healer.nodeDied(tenantId, nodeId))
            .catch(warn('could not record a node death; the next reconciliation will'));
          return;
        }
        case 'start':
          void manager
            .ownerOf(tenantId, nodeId, e.containerId)
            .then((node) => node && sampler.track(e.containerId, { tenantId, poolId: node.pool_id, nodeId }))
            .catch(warn('could not look up a started container'));
          return;
        case 'destroy':
          sampler.untrack(e.containerId);
          return;
        case 'health_status':
          void manager
            .ownerOf(tenantId, nodeId, e.containerId)
            .then(async (node) => {
              if (!node || !e.health) return;
              await bus.publish(
                'node.evt.health',
                { tenantId, poolId: node.pool_id, nodeId, at: new Date().toISOString(), containerId: e.containerId, status: e.health },
                { msgId: `node.evt.health:${e.containerId}:${e.timeNano}` },
              );
            })
            .catch(warn('could not publish a health_status event'));
          return;
      }
    }

    let reconciling: Promise<void> | undefined;
    let again = false;
    // One reconciliation at a time; a reconnect during one asks for another after it.
    function reconcileAll(): Promise<void> {
      if (reconciling) {
        again = true;
        return reconciling;
      }
      reconciling = (async () => {
        do {
          again = false;
          try {
            sampler.sync(await manager.reconcileAll());
            log.info('reconciled every pool with the Docker engine');
          } catch (err) {
            warn('reconciliation failed; it runs again on the next reconnect')(err);
          }
        } while (again);
      })().finally(() => (reconciling = undefined));
      return reconciling;
    }

    const events = watchDockerEvents(client, {
      onEvent,
      onConnect: reconcileAll,
      onDisconnect: (reason) => log.warn({ reason }, 'Docker event stream lost; reconnecting'),
    });
    onShutdown(() => events.stop());

    // Registered last so it stops first: finish the commands in hand while db and NATS are up.
    supervise('commands', bus.consume('exitNodeManagerCommands', manager.commands, { concurrency: 4 }));
  },
});
