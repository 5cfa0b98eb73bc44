import cluster from 'node:cluster';
import type { Server } from 'node:net';
import { compilePolicy } from '@switchyard/acl';
import { AclDenials, AclGate, AclPolicyBook, rebuildAclPolicies, reportInvalidPolicies, requestAclSnapshot, requestPoolSnapshot, runService } from '@switchyard/service-kit';
import { LoadBalancerEnv } from './config.js';
import { TrafficCounters } from './counters.js';
import { acceptAppClient, acceptProxyClient, type DataPlane } from './dataplane.js';
import { destinationPolicy } from './destinations.js';
import { bestNode, strategy, traffic } from './endpoints.js';
import { rebuildTable, tableEvents } from './handlers.js';
import { AppListeners, listen } from './listeners.js';
import { Router } from './router.js';
import { parseClientRegions, parseCountryPorts, parseProxyUsers } from './settings.js';
import { ProxyCredentials, ProxyUserBook, proxyUserEvents, rebuildProxyUsers } from './proxy-users.js';
import { openStrategyStore } from './strategies.js';
import { RoutingTable } from './table.js';

/** One complete load balancer: its own NATS connection, routing table and listeners. */
export async function runWorker(): Promise<void> {
  await runService({
    name: 'load-balancer',
    description: 'the data-plane front door: routes client connections to healthy nodes',
    env: LoadBalancerEnv,
    redis: true,
    quietReady: cluster.isWorker,
    async start({ config, log, nc, bus, service, redis, onShutdown, follow }) {
      const counters = new TrafficCounters();
      const table = new RoutingTable(counters, cluster.isWorker ? config.LB_WORKERS : 1);
      const store = await openStrategyStore(nc, log);
      onShutdown(() => store.stop());
      // Every worker follows the tenants' proxy users itself, as it follows the routing table.
      const proxyUsers = new ProxyUserBook();
      const credentials = new ProxyCredentials(parseProxyUsers(config.LB_PROXY_USERS), proxyUsers);
      const usersResync = follow({
        what: 'proxy users',
        events: proxyUserEvents(proxyUsers),
        rebuild: rebuildProxyUsers(proxyUsers, (p) => bus.request('proxyuser.req.snapshot', p, { timeoutMs: 5000 })),
        periodMs: config.LB_REBUILD_INTERVAL_MS,
      });
      // The tenants' ACL policies, compiled once per change, judged per connection before a node is dialled.
      const policies = new AclPolicyBook({
        compile: compilePolicy,
        onInvalid: reportInvalidPolicies(bus, log),
      });
      const acl = new AclGate(policies, new AclDenials(), log);
      const aclResync = follow({
        what: 'ACL policies',
        events: { 'acl.evt.changed': async (p) => void policies.changed(p) },
        rebuild: rebuildAclPolicies(policies, () => requestAclSnapshot((q) => bus.request('acl.req.snapshot', q, { timeoutMs: 5000 }))),
        periodMs: config.LB_REBUILD_INTERVAL_MS,
      });
      const router = new Router(table, store, config.LB_DEFAULT_STRATEGY, parseClientRegions(config.LB_CLIENT_REGIONS));

      const dp: DataPlane = {
        router,
        counters,
        config: {
          connectTimeoutMs: config.LB_CONNECT_TIMEOUT_MS,
          handshakeTimeoutMs: config.LB_HANDSHAKE_TIMEOUT_MS,
          retries: config.LB_CONNECT_RETRIES,
          firstByteTimeoutMs: config.LB_FIRST_BYTE_TIMEOUT_MS,
          halfCloseTimeoutMs: config.LB_HALF_CLOSE_TIMEOUT_MS,
          openProxy: config.LB_OPEN_PROXY,
          destinations: destinationPolicy({ denied: config.LB_DENIED_NETWORKS, allowed: config.LB_ALLOWED_NETWORKS }),
          maxConnectionsPerClient: config.LB_MAX_CONNECTIONS_PER_CLIENT,
          idleTimeoutMs: config.LB_IDLE_TIMEOUT_MS,
          maxBufferedBytes: config.LB_MAX_BUFFERED_BYTES,
        },
        credentials,
        acl,
        connectFailed(node, error) {
          bus
            .publish('lb.evt.connfail', { tenantId: node.tenantId, poolId: node.poolId, nodeId: node.id, at: new Date().toISOString(), error: error.slice(0, 500) })
            .catch(() => undefined);
        },
      };

      // The proxy ports are bound before any pool is known, so no app pool can take one.
      const servers: Server[] = [];
      const countryPorts = parseCountryPorts(config.LB_COUNTRY_PORTS);
      servers.push(await listen(config.LB_LISTEN_HOST, config.LB_PROXY_PORT, (sock) => acceptProxyClient(dp, sock, undefined), log));
      for (const [port, country] of countryPorts) {
        servers.push(await listen(config.LB_LISTEN_HOST, port, (sock) => acceptProxyClient(dp, sock, country), log));
      }
      const proxyPorts = new Set([config.LB_PROXY_PORT, ...countryPorts.keys()]);
      const apps = new AppListeners(config.LB_LISTEN_HOST, proxyPorts, log, (sock, poolId) => acceptAppClient(dp, sock, poolId));
      table.onChange = () => apps.sync(table.allPools());

      const resync = follow({
        what: 'routing table',
        events: tableEvents({ table, counters, redis: redis!, log }),
        rebuild: rebuildTable({
          table,
          snapshot: () => requestPoolSnapshot((q) => bus.request('pool.req.snapshot', q, { timeoutMs: 5000 })),
          health: (p) => bus.request('health.req.status', p, { timeoutMs: 2000 }),
          log,
        }),
        periodMs: config.LB_REBUILD_INTERVAL_MS,
      });
      // Ready once the first rebuild was tried; a failed one is retried soon, not a period later.
      await Promise.all([resync.settled(), usersResync.settled(), aclResync.settled()]);
      const scoreTimer = setInterval(() => {
        bus.request('health.req.status', {}, { timeoutMs: 1000 }).then(
          (reply) => table.refreshScores(reply.nodes),
          () => undefined, // health-monitor away: scores keep their last values
        );
      }, config.LB_SCORE_REFRESH_MS);
      onShutdown(async () => clearInterval(scoreTimer));

      const flush = () =>
        Promise.all([
          counters.flush(redis!).catch((err: Error) => log.warn({ err: err.message }, 'traffic counters not flushed')),
          acl.denials.flush(redis!).catch((err: Error) => log.warn({ err: err.message }, 'ACL denial counts not flushed')),
        ]);
      const flushTimer = setInterval(() => void flush(), config.LB_FLUSH_INTERVAL_MS);
      onShutdown(async () => {
        clearInterval(flushTimer);
        counters.abandonOpen();
        await flush();
      });

      bus.serve(service, 'lb.req.best', async (p) => bestNode(router, p));
      bus.serve(service, 'lb.req.strategy', (p) => strategy(store, config.LB_DEFAULT_STRATEGY, p));
      bus.serve(service, 'lb.req.traffic', (p) => traffic(redis!, table, p));

      // Registered last so it runs first: stop taking clients before anything else closes.
      onShutdown(async () => {
        for (const s of servers) s.close();
        apps.close();
      });
      log.info({ proxyPort: config.LB_PROXY_PORT, countryPorts: config.LB_COUNTRY_PORTS || undefined, auth: credentials.configured() }, 'listening');
      if (!credentials.configured()) {
        if (config.LB_OPEN_PROXY) log.warn('LB_OPEN_PROXY=true and no proxy users: anyone who reaches the proxy ports uses every exit pool');
        else log.info('no proxy users configured: exit pools are refused to every client (LB_OPEN_PROXY=true serves them unauthenticated)');
      }
      if (config.LB_ALLOWED_NETWORKS) log.warn({ allowed: config.LB_ALLOWED_NETWORKS }, 'LB_ALLOWED_NETWORKS exempts these networks from the destination deny list');
    },
  });
  process.send?.({ type: 'ready' });
}
