#!/usr/bin/env node
import { chmod, mkdir } from 'node:fs/promises';
import { createDb, migrateToLatest } from '@switchyard/db';
import { requestPoolSnapshot, runService } from '@switchyard/service-kit';
import { endLeftovers, type SshEdge } from '@switchyard/tunnels';
import { TunnelManagerEnv } from './config.js';
import { EdgeHosts } from './edge-hosts.js';
import { createHandlers } from './handlers.js';
import { TunnelManager } from './manager.js';
import { migrations } from './migrations.js';
import { NodeAgent } from './node-agent.js';
import { directAddressList, settingsProblems } from './plan.js';
import { LocalNodeSide } from './local-side.js';
import type { Database } from './tables.js';

const SNAPSHOT_TIMEOUT_MS = 5000;
const PLAN_TIMEOUT_MS = 10_000;

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
    // 0755: the edge's AuthorizedKeysCommand, run as another account, lives below it.
    await mkdir(config.TUNNEL_STATE_DIR, { recursive: true, mode: 0o755 });
    await chmod(config.TUNNEL_STATE_DIR, 0o755);
    const ended = await endLeftovers(config.TUNNEL_STATE_DIR);
    if (ended.length) log.warn({ pids: ended }, 'ended the sshd, ssh sessions and wireguard-go an earlier run left behind');

    if (config.TUNNEL_ROLE === 'node') {
      // No database and no orders: the agent runs what the edge's plan says.
      const agent = new NodeAgent({
        hostId: config.TUNNEL_HOST_ID!,
        stateDir: config.TUNNEL_STATE_DIR,
        wgPort: config.TUNNEL_WG_PORT,
        sshRetryMs: config.TUNNEL_SSH_RETRY_MS,
        publishAddresses: new Set(directAddressList(config.TUNNEL_PUBLISH_ADDRESSES)),
        requestPlan: (req) => bus.request('tunnel.req.plan', req, { timeoutMs: PLAN_TIMEOUT_MS }),
        log,
      });
      onShutdown(() => agent.stop());
      const sync = (why: string) =>
        agent.sync().catch((err: Error) => log.warn({ err: err.message, why }, 'could not converge on the edge plan; trying again on the next change or tick'));
      // A resync like the other services': at start, on every reconnect, on a timer, on a change.
      follow({ what: 'edge plan', events: {}, rebuild: () => agent.sync(), periodMs: config.TUNNEL_RESYNC_MS });
      supervise(
        'plan changes',
        bus.subscribe('tunnel.evt.replanned', async (p) => {
          if (p.hostId === config.TUNNEL_HOST_ID) void sync('the edge changed the plan');
        }),
      );
      return;
    }

    const db = createDb<Database>(config.DATABASE_URL, { applicationName: 'tunnel-manager' });
    onShutdown(() => db.destroy());
    await migrateToLatest(db, { migrations, table: 'tunnel_manager_migrations' });

    const edgeRole = config.TUNNEL_ROLE === 'edge';
    const settings = {
      edgeHost: config.TUNNEL_EDGE_HOST,
      publicHost: config.TUNNEL_EDGE_PUBLIC_HOST ?? config.TUNNEL_EDGE_HOST,
      portRange: [config.TUNNEL_PORT_MIN, config.TUNNEL_PORT_MAX] as [number, number],
      sshPort: config.TUNNEL_SSH_PORT,
      sshHost: config.TUNNEL_SSH_HOST,
      sshForwardRange: [config.TUNNEL_SSH_FORWARD_MIN, config.TUNNEL_SSH_FORWARD_MAX] as [number, number],
      stateDir: config.TUNNEL_STATE_DIR,
      sshUser: config.TUNNEL_SSH_USER,
      keysUser: config.TUNNEL_KEYS_USER,
      keyOverlapMs: config.TUNNEL_KEY_OVERLAP_MS,
      directAddresses: new Set(directAddressList(config.TUNNEL_DIRECT_ADDRESSES)),
      maxPerTenant: config.TUNNEL_MAX_PER_TENANT,
      rotateMinIntervalMs: config.TUNNEL_ROTATE_MIN_INTERVAL_MS,
    };
    // The edge's sshd is the manager's; the hosts' plans name it (its port and pinned host key).
    let sshEdge: () => Promise<SshEdge> = () => Promise.reject(new Error('tunnel-manager is starting'));
    let lostKey = (_keyId: string) => {};
    let linkRotated = () => {};
    const hosts = edgeRole
      ? new EdgeHosts({
          db,
          log,
          settings: {
            hostId: config.TUNNEL_HOST_ID!,
            stateDir: config.TUNNEL_STATE_DIR,
            wgRange: config.TUNNEL_WG_RANGE,
            wgPort: config.TUNNEL_WG_PORT,
            wgEndpoint: config.TUNNEL_WG_ENDPOINT ?? `${config.TUNNEL_EDGE_HOST}:${config.TUNNEL_WG_PORT}`,
            wgRotateMs: config.TUNNEL_WG_ROTATE_HOURS * 3_600_000,
            sshPublicHost: config.TUNNEL_SSH_PUBLIC_HOST ?? config.TUNNEL_SSH_HOST,
            sshUser: config.TUNNEL_SSH_USER,
          },
          notify: (hostId) => bus.publish('tunnel.evt.replanned', { hostId }),
          sshEdge: () => sshEdge(),
          lostKey: (keyId) => lostKey(keyId),
          linkRotated: () => linkRotated(),
        })
      : undefined;
    if (hosts) {
      await hosts.start();
      onShutdown(() => hosts.stop());
    }
    const manager = new TunnelManager({
      db,
      publish: (subject, payload, opts) => bus.publish(subject, payload, opts),
      log,
      side: hosts ?? new LocalNodeSide(config.TUNNEL_STATE_DIR, { sshRetryMs: config.TUNNEL_SSH_RETRY_MS }, log),
      ...(hosts ? { hosts } : {}),
      fleet: async (tenantId) => {
        const snapshot = await requestPoolSnapshot((q) => bus.request('pool.req.snapshot', q, { timeoutMs: SNAPSHOT_TIMEOUT_MS }), { tenantId });
        return { pools: snapshot.pools, nodes: snapshot.nodes, complete: snapshot.skipped === 0 };
      },
      settings,
    });
    sshEdge = () => manager.sshEdge();
    lostKey = (keyId) => manager.replaceLostKey(keyId);
    linkRotated = () => void manager.linkRotated();
    onShutdown(() => manager.stop());
    const handlers = createHandlers(manager, { publish: bus.publish, log });
    if (hosts) {
      bus.serve(service, 'tunnel.req.plan', (req) => hosts.plan(req));
      // The agent's sessions with an earlier run of the edge are dead: it learns the new epoch now, not at its next tick.
      hosts.announce();
    }

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
