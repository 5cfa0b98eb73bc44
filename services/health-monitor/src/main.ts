#!/usr/bin/env node
import { Resync, runService } from '@switchyard/service-kit';
import { HealthMonitorEnv } from './config.js';
import { HealthStore } from './health-store.js';
import { HealthMonitor } from './monitor.js';
import { runProbe } from './probes.js';
import { readSleepPolicies } from './sleep-policies.js';
import { createSpeedTests } from './speed-tests.js';

// An event about a pool the snapshot did not have asks for another; at most this often.
const UNKNOWN_RESYNC_GAP_MS = 1000;
// The sleep-controller answers from memory; one that takes longer is treated as silent.
const SLEEP_POLICY_TIMEOUT_MS = 1000;

await runService({
  name: 'health-monitor',
  description: 'active and passive health checks, health scores and speed tests',
  env: HealthMonitorEnv,
  redis: true,
  async start({ config, log, bus, nc, service, redis, onShutdown, supervise }) {
    let lastUnknownResync = -Infinity;
    let store: HealthStore | undefined;
    const monitor: HealthMonitor = new HealthMonitor({
      probe: runProbe,
      proxyTarget: config.HEALTH_PROXY_TARGET,
      connfail: { limit: config.HEALTH_CONNFAIL_LIMIT, windowMs: config.HEALTH_CONNFAIL_WINDOW_MS },
      maxInflight: config.HEALTH_MAX_INFLIGHT,
      onTransition: (change) => {
        log.info({ nodeId: change.nodeId, status: change.status, score: change.score, reason: change.reason }, 'health changed');
        bus.publish('health.evt.changed', change).catch((err: unknown) => log.warn({ err: (err as Error).message, nodeId: change.nodeId }, 'could not publish health.evt.changed'));
      },
      onChange: (nodeId, routine) => store?.changed(nodeId, routine),
      onForget: (nodeId) => store?.forget(nodeId),
      onUnknown: () => {
        if (performance.now() - lastUnknownResync < UNKNOWN_RESYNC_GAP_MS) return;
        lastUnknownResync = performance.now();
        resync.request();
      },
    });
    if (redis) store = new HealthStore(redis, (id) => monitor.record(id), log);
    onShutdown(async () => store?.flush());
    onShutdown(async () => monitor.stop());

    const resync = new Resync(
      async () => {
        const requestedAt = performance.now();
        const snapshot = await bus.request('pool.req.snapshot', {}, { timeoutMs: 5000 });
        const policies = await readSleepPolicies(
          (p) => bus.request('sleep.req.policy', p, { timeoutMs: SLEEP_POLICY_TIMEOUT_MS }),
          snapshot.pools.map((p) => p.tenantId),
          (tenantId, err) => log.debug({ tenantId, err: err.message }, 'no sleep policies from the sleep-controller; keeping what events and pool specs say'),
        );
        monitor.replace(snapshot, requestedAt, policies);
        log.debug({ pools: snapshot.pools.length, nodes: snapshot.nodes.length, sleepPolicyTenants: policies.size }, 'node set rebuilt');
      },
      { periodMs: config.HEALTH_RESYNC_MS, retryMs: 1000, onError: (err) => log.warn({ err: err.message }, 'could not rebuild the node set from pool.req.snapshot') },
    );
    onShutdown(() => resync.stop());

    // Subscribed before the first snapshot, so nothing that happens while it travels is lost.
    supervise('pool.evt.changed', bus.subscribe('pool.evt.changed', async (p) => monitor.poolChanged(p)));
    supervise('pool.evt.deleted', bus.subscribe('pool.evt.deleted', async (p) => monitor.poolDeleted(p)));
    supervise('node.evt.created', bus.subscribe('node.evt.created', async (p) => monitor.nodeCreated(p)));
    supervise('node.evt.started', bus.subscribe('node.evt.started', async (p) => monitor.nodeStarted(p)));
    supervise('node.evt.stopped', bus.subscribe('node.evt.stopped', async (p) => monitor.nodeStopped(p)));
    supervise('node.evt.died', bus.subscribe('node.evt.died', async (p) => monitor.nodeDied(p)));
    supervise('node.evt.removed', bus.subscribe('node.evt.removed', async (p) => monitor.nodeRemoved(p)));
    supervise('node.evt.draining', bus.subscribe('node.evt.draining', async (p) => monitor.nodeDraining(p)));
    supervise('node.evt.health', bus.subscribe('node.evt.health', async (p) => monitor.nodeHealthReported(p)));
    supervise('sleep.evt.policy', bus.subscribe('sleep.evt.policy', async (p) => monitor.sleepPolicyChanged(p)));
    supervise('lb.evt.connfail', bus.subscribe('lb.evt.connfail', async (p) => monitor.connectionFailed(p)));

    void (async () => {
      for await (const s of nc.status()) if (s.type === 'reconnect') resync.request();
    })();
    resync.request();
    // Ready once the first rebuild was tried: a monitor started with the manager down still
    // answers, and fills in when the manager does.
    await resync.settled();

    bus.serve(service, 'health.req.status', async (p) => ({ nodes: monitor.status(p) }));
    bus.serve(
      service,
      'health.req.speedtest',
      createSpeedTests({
        node: (id) => monitor.node(id),
        defaultUrl: config.SPEEDTEST_URL,
        bytes: config.SPEEDTEST_BYTES,
        timeoutMs: config.SPEEDTEST_TIMEOUT_MS,
        publish: (result) => bus.publish('health.evt.speedtest', result),
        log,
      }),
    );
  },
});
