#!/usr/bin/env node
import { createDb, migrateToLatest } from '@switchyard/db';
import { createDockerClient } from '@switchyard/docker';
import { runService } from '@switchyard/service-kit';
import { ExitNodeManagerEnv } from './config.js';
import { createDockerOps, DockerOpError } from './docker-ops.js';
import { createCommandHandlers, listNodeViews } from './handlers.js';
import { redisHotState } from './hot-state.js';
import { migrations } from './migrations.js';
import type { Database } from './tables.js';

await runService({
  name: 'exit-node-manager',
  description: 'reconciles pools to Docker containers and carries out node commands',
  env: ExitNodeManagerEnv,
  redis: true,
  async start({ config, log, bus, service, redis, onShutdown, supervise }) {
    const db = createDb<Database>(config.DATABASE_URL, { applicationName: 'exit-node-manager' });
    onShutdown(() => db.destroy());
    await migrateToLatest(db, { migrations, table: 'exit_node_manager_migrations' });

    const docker = createDockerOps(createDockerClient({ DOCKER_HOST: config.DOCKER_HOST }));
    // A missing engine fails orders with a reason the tenant sees; the service itself still
    // starts so node.req.list keeps answering.
    try {
      await docker.ping();
    } catch (err) {
      if (!(err instanceof DockerOpError)) throw err;
      log.warn({ err: err.message }, 'Docker is not reachable; orders will fail until it is');
    }

    bus.serve(service, 'node.req.list', (payload) => listNodeViews(db, payload));

    const handlers = createCommandHandlers({
      db,
      docker,
      bus,
      hotState: redisHotState(redis, log),
      log,
      config: { exitNodeImage: config.EXIT_NODE_IMAGE, publishHost: config.NODE_PUBLISH_HOST },
    });
    // Registered last so it stops first: finish the commands in hand while db and NATS are up.
    supervise('commands', bus.consume('exitNodeManagerCommands', handlers, { concurrency: 4 }));
  },
});
