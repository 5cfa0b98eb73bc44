#!/usr/bin/env node
import { chmod, mkdir } from 'node:fs/promises';
import { createDb, migrateToLatest } from '@switchyard/db';
import { requestPoolSnapshot, runService } from '@switchyard/service-kit';
import { TunnelManagerEnv } from './config.js';
import { createHandlers } from './handlers.js';
import { endLeftovers } from './leftovers.js';
import { TunnelManager } from './manager.js';
import { migrations } from './migrations.js';
import { directAddressList, settingsProblems } from './plan.js';
import type { Database } from './tables.js';

const SNAPSHOT_TIMEOUT_MS = 5000;

await runService({
  name: 'tunnel-manager',
  description: 'opens, watches and fails over tunnel paths to nodes',
  env: TunnelManagerEnv,
  async start({ config, log, bus, service, onShutdown, supervise, follow }) {
    const problems = settingsProblems(config);
    if (problems.length) {
      process.stderr.write(`tunnel-manager: bad configuration\n${problems.map((p) => `  ${p}\n`).join('')}`);
      process.exit(78);
    }
    const db = createDb<Database>(config.DATABASE_URL, { applicationName: 'tunnel-manager' });
    onShutdown(() => db.destroy());
    await migrateToLatest(db, { migrations, table: 'tunnel_manager_migrations' });

    // 0755: the edge's AuthorizedKeysCommand, run as another account, lives below it.
    await mkdir(config.TUNNEL_STATE_DIR, { recursive: true, mode: 0o755 });
    await chmod(config.TUNNEL_STATE_DIR, 0o755);
    const ended = await endLeftovers(config.TUNNEL_STATE_DIR);
    if (ended.length) log.warn({ pids: ended }, 'ended the sshd and ssh sessions an earlier run left behind');

    const manager = new TunnelManager({
      db,
      publish: (subject, payload, opts) => bus.publish(subject, payload, opts),
      log,
      nodes: async (tenantId) => {
        const snapshot = await requestPoolSnapshot((q) => bus.request('pool.req.snapshot', q, { timeoutMs: SNAPSHOT_TIMEOUT_MS }), { tenantId });
        return { nodes: snapshot.nodes, complete: snapshot.skipped === 0 };
      },
      settings: {
        edgeHost: config.TUNNEL_EDGE_HOST,
        publicHost: config.TUNNEL_EDGE_PUBLIC_HOST ?? config.TUNNEL_EDGE_HOST,
        portRange: [config.TUNNEL_PORT_MIN, config.TUNNEL_PORT_MAX],
        sshPort: config.TUNNEL_SSH_PORT,
        sshForwardRange: [config.TUNNEL_SSH_FORWARD_MIN, config.TUNNEL_SSH_FORWARD_MAX],
        stateDir: config.TUNNEL_STATE_DIR,
        sshUser: config.TUNNEL_SSH_USER,
        keysUser: config.TUNNEL_KEYS_USER,
        keyOverlapMs: config.TUNNEL_KEY_OVERLAP_MS,
        directAddresses: new Set(directAddressList(config.TUNNEL_DIRECT_ADDRESSES)),
        maxPerTenant: config.TUNNEL_MAX_PER_TENANT,
        rotateMinIntervalMs: config.TUNNEL_ROTATE_MIN_INTERVAL_MS,
        sshRetryMs: config.TUNNEL_SSH_RETRY_MS,
      },
    });
    onShutdown(() => manager.stop());
    const handlers = createHandlers(manager, { publish: bus.publish, log });

    // Tunnels come back from the tables: at start, and whenever one could not be built yet
    // (its node's manager away, its port not published).
    const resync = follow({ what: 'tunnels', events: handlers.events, rebuild: () => manager.restore(), periodMs: config.TUNNEL_RESYNC_MS });
    await resync.settled();

    const keyTimer = setInterval(() => void manager.checkKeys().catch((err: Error) => log.warn({ err: err.message }, 'key check failed')), config.TUNNEL_KEY_CHECK_MS);
    onShutdown(async () => clearInterval(keyTimer));

    bus.serve(service, 'tunnel.req.list', (p) => manager.list(p));
    // Registered last so it stops first: finish the commands in hand while db and NATS are up.
    supervise('commands', bus.consume('tunnelManagerCommands', handlers.commands, { concurrency: 4 }));
  },
});
