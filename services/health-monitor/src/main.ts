#!/usr/bin/env node
import { requestPoolSnapshot, runService } from '@switchyard/service-kit';
import { HealthMonitorEnv } from './config.js';
import { monitorEvents, rebuildNodeSet } from './handlers.js';
import { HealthStore } from './health-store.js';
import { HealthMonitor } from './monitor.js';
import { runProbe } from './probes.js';
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
  async start({ config, log, bus, service, redis, onShutdown, follow }) {
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

    const resync = follow({
      what: 'node set',
      events: monitorEvents(monitor),
      rebuild: rebuildNodeSet({
        monitor,
        snapshot: () => requestPoolSnapshot((q) => bus.request('pool.req.snapshot', q, { timeoutMs: 5000 })),
        sleepPolicies: (p) => bus.request('sleep.req.policy', p, { timeoutMs: SLEEP_POLICY_TIMEOUT_MS }),
        log,
      }),
      periodMs: config.HEALTH_RESYNC_MS,
    });
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
