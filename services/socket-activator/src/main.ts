#!/usr/bin/env node
import { createServer, type Socket } from 'node:net';
import { compilePolicy } from '@switchyard/acl';
import { createDb, migrateToLatest } from '@switchyard/db';
import { AclDenials, AclGate, AclPolicyBook, rebuildAclPolicies, reportInvalidPolicies, requestAclSnapshot, requestPoolSnapshot, runService } from '@switchyard/service-kit';
import { aclAdmission, trustedSources } from './acl-admission.js';
import { Activator } from './activator.js';
import { createCatchStore } from './catch-store.js';
import { noRedirects, type Redirects } from './catches.js';
import { SocketActivatorEnv } from './config.js';
import { forward, release } from './forward.js';
import { activatorEvents } from './handlers.js';
import { createMetrics, serveMetrics } from './metrics.js';
import { migrations } from './migrations.js';
import { NftRedirects } from './nft.js';
import { originalDestination } from './original-dst.js';
import { PoolTags } from './pool-tags.js';
import { probeOnce } from './probe.js';
import { ProxyListeners } from './proxy-listeners.js';
import type { Database } from './tables.js';

// Nodes publish their ports here (exit-node-manager's NODE_PUBLISH_HOST on this host).
const NODE_HOST = '127.0.0.1';
const PROBE_CONNECT_TIMEOUT_MS = 1000;
// Events arrive on core NATS and can be missed; a periodic rebuild repairs what they missed.
const RESYNC_MS = 30_000;
// Denials reach Redis in batches: a flood of denied connections is not a flood of commands.
const DENIALS_FLUSH_MS = 1000;

await runService({
  name: 'socket-activator',
  description: 'catches connections to sleeping nodes, wakes them and steps out of the path',
  env: SocketActivatorEnv,
  redis: true,
  async start({ config, log, bus, service, redis, onShutdown, follow }) {
    const db = createDb<Database>(config.DATABASE_URL, { applicationName: 'socket-activator' });
    onShutdown(() => db.destroy());
    await migrateToLatest(db, { migrations, table: 'socket_activator_migrations' });

    const nftables = config.ACTIVATOR_MODE === 'nftables';
    // The activator's own connections leave from SOURCE_ADDRESS so the redirect rule skips them.
    const localAddress = nftables ? config.ACTIVATOR_SOURCE_ADDRESS : undefined;
    let redirects: Redirects = noRedirects;
    if (nftables) {
      const nft = new NftRedirects({ table: config.ACTIVATOR_NFT_TABLE, listenPort: config.ACTIVATOR_LISTEN_PORT, sourceAddress: config.ACTIVATOR_SOURCE_ADDRESS });
      await nft.setup();
      redirects = nft;
    }

    const { registry, metrics } = createMetrics(() => redirects.ports().length);
    if (config.ACTIVATOR_METRICS_PORT > 0) {
      const server = await serveMetrics(registry, config.ACTIVATOR_LISTEN_HOST, config.ACTIVATOR_METRICS_PORT);
      onShutdown(() => new Promise((resolve) => server.close(resolve)));
    }

    // Connections that arrive before the stored catches are loaded wait for them: a port not
    // known yet must not be taken for an unknown one (that would drop it from the set). They
    // wait for the first read of the ACL policies too (bounded by its request's timeout), so a
    // connection at start is judged rather than let go as unknown.
    let loaded = false;
    const early: Array<() => void> = [];
    const whenLoaded = (fn: () => void) => (loaded ? fn() : early.push(fn));

    // The tenants' ACL policies, and the pools' tags they name: a caught connection is judged
    // before anything is woken for it.
    const poolTags = new PoolTags();
    const policies = new AclPolicyBook({
      compile: compilePolicy,
      onInvalid: reportInvalidPolicies(bus, log),
    });
    const acl = new AclGate(policies, new AclDenials(), log);
    const admit = aclAdmission(acl, poolTags, trustedSources(config.ACTIVATOR_ACL_TRUSTED_SOURCES));

    const proxies = new ProxyListeners(config.ACTIVATOR_PUBLIC_HOST, (socket, nodeId, portName) => whenLoaded(() => activator.accept(socket, { nodeId, portName })));
    const activator: Activator = new Activator({
      mode: config.ACTIVATOR_MODE,
      nodeHost: NODE_HOST,
      listenPort: config.ACTIVATOR_LISTEN_PORT,
      store: createCatchStore(db),
      redirects,
      requestWake: (c, orderId) => bus.publish('node.cmd.wake', { orderId, tenantId: c.tenantId, nodeId: c.nodeId, reason: 'connection' }),
      probe: (port) =>
        probeOnce({ host: NODE_HOST, port, settleMs: config.ACTIVATOR_PROBE_SETTLE_MS, connectTimeoutMs: PROBE_CONNECT_TIMEOUT_MS, ...(localAddress ? { localAddress } : {}) }),
      forward: (socket, port, handover) =>
        forward(socket, {
          host: NODE_HOST,
          port,
          ...handover,
          connectTimeoutMs: config.ACTIVATOR_CONNECT_TIMEOUT_MS,
          halfCloseMs: config.ACTIVATOR_HALF_CLOSE_TIMEOUT_MS,
          onRefused: (err) => log.warn({ hostPort: port, err: err.message }, 'the node refused a forwarded connection; the client was let go'),
          ...(localAddress ? { localAddress } : {}),
        }),
      release,
      woke: (e) => bus.publish('activator.evt.woke', e),
      failed: (e) => bus.publish('activator.evt.failed', e),
      ...(nftables
        ? {}
        : {
            listen: (c, port) => proxies.ensure(c.nodeId, port.name, port.publicPort),
            unlisten: (nodeId) => proxies.close(nodeId),
          }),
      admit,
      metrics,
      log,
    });
    onShutdown(() => proxies.closeAll());

    if (nftables) {
      const listener = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket: Socket) => {
        const dst = originalDestination(socket);
        if (!dst) {
          log.warn({ remote: `${socket.remoteAddress}:${socket.remotePort}` }, 'a connection that was not redirected: closed');
          release(socket);
          return;
        }
        whenLoaded(() => activator.accept(socket, { hostPort: dst.port }));
      });
      await new Promise<void>((resolve, reject) => {
        listener.once('error', reject);
        listener.listen(config.ACTIVATOR_LISTEN_PORT, config.ACTIVATOR_LISTEN_HOST, () => resolve());
      });
      // Stops accepting at once; the held connections are let go by activator.stop(), next.
      onShutdown(async () => void listener.close());
    }
    // Registered after the listeners, so it runs before they close: held connections are
    // ended cleanly instead of keeping the close waiting.
    onShutdown(async () => activator.stop());

    const aclResync = follow({
      what: 'ACL policies',
      events: { 'acl.evt.changed': async (p) => void policies.changed(p) },
      rebuild: rebuildAclPolicies(policies, () => requestAclSnapshot((q) => bus.request('acl.req.snapshot', q, { timeoutMs: 5000 }))),
      periodMs: RESYNC_MS,
    });
    await Promise.all([activator.load(), aclResync.settled()]);
    loaded = true;
    for (const fn of early.splice(0)) fn();

    // Armed ports are caught from the rows alone; the snapshot only refines, so it runs behind.
    follow({
      what: 'catches',
      events: activatorEvents(activator, poolTags),
      rebuild: async () => {
        const askedAt = activator.mark();
        const snapshot = await requestPoolSnapshot((q) => bus.request('pool.req.snapshot', q, { timeoutMs: 5000 }));
        poolTags.replace(snapshot.pools);
        await activator.reconcile(snapshot, askedAt);
      },
      periodMs: RESYNC_MS,
    });
    const flushDenials = () => acl.denials.flush(redis!).catch((err: Error) => log.warn({ err: err.message }, 'ACL denial counts not flushed'));
    const denialsTimer = setInterval(() => void flushDenials(), DENIALS_FLUSH_MS);
    onShutdown(async () => {
      clearInterval(denialsTimer);
      await flushDenials();
    });

    bus.serve(service, 'activator.req.arm', (p) => activator.arm(p));
    bus.serve(service, 'activator.req.state', async (p) => activator.state(p));
  },
});
