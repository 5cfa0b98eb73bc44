import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ServiceName } from '@switchyard/contracts';
import { rawGet, eventually, HTTP_APP_IMAGE, HTTP_APP_PORT, httpGet, MODES, startScaleToZero, type ScaleToZero } from '@switchyard/testkit';

const SERVICES: ServiceName[] = ['api-gateway', 'exit-node-manager', 'sleep-controller', 'socket-activator'];

// Scale to zero under change, in both activator modes: a sleep policy changed through the API
// applies at once without restarting anything, an activator killed while a node sleeps is
// replaced by one that still catches the next connection, and a wake whose port never
// accepts ends at the probe timeout, cleanly and on the timeline.
describe.each(MODES)('scale to zero under change, activator in %s mode', (mode) => {
  let s: ScaleToZero;

  beforeAll(async () => {
    s = await startScaleToZero(mode);
  }, 120_000);
  afterAll(async () => {
    await s?.close();
  });

  const pids = () => SERVICES.map((name) => s.sys.processes(name).map((p) => p.pid));

  it('applies a policy change at once, without restarting any service', async () => {
    const before = pids();
    const { poolId, nodeIds } = await s.createAppPool({ name: 'policy', image: HTTP_APP_IMAGE, containerPort: HTTP_APP_PORT });
    const nodeId = nodeIds[0]!;
    const port = await s.endpoint(nodeId);
    const sleptEvents = () => s.watch.seen.filter((m) => m.subject === 'sleep.evt.slept' && m.data.nodeId === nodeId);

    // A window of ten minutes: idle for longer than the next one will be, the node stays up.
    expect((await s.setSleepPolicy(poolId, { enabled: true, idleWindowSec: 600 })).status).toBe(202);
    await sleep(4_000);
    expect(sleptEvents()).toEqual([]);
    expect((await s.node(nodeId))?.status).toBe('running');

    const changedAt = Date.now();
    expect((await s.setSleepPolicy(poolId, { enabled: true, idleWindowSec: 2 })).status).toBe(202);
    const read = await s.sys.http('GET', `/v1/pools/${poolId}/sleep`);
    expect(read.status).toBe(200);
    expect(read.body).toMatchObject({ poolId, default: false, policy: { enabled: true, idleWindowSec: 2 } });
    const slept = await s.watch.next((m) => m.subject === 'sleep.evt.slept' && m.data.nodeId === nodeId, 15_000);
    // Idle since its start, it sleeps as soon as the sleep controller applies the new window.
    expect(slept.at - changedAt).toBeLessThan(5_000);
    await s.waitForNodeStatus(nodeId, 'sleeping', 10_000);

    // Disabled: a node woken by a connection stays up however idle it is.
    expect((await s.setSleepPolicy(poolId, { enabled: false })).status).toBe(202);
    expect((await httpGet(port, '/', 15_000)).status).toBe(200);
    await s.waitForNodeStatus(nodeId, 'running', 5_000);
    await sleep(5_000);
    expect(sleptEvents()).toHaveLength(1);
    expect((await s.node(nodeId))?.status).toBe('running');

    expect(pids()).toEqual(before);
    expect(before.every((list) => list.length === 1)).toBe(true);
  }, 90_000);

  it('catches the next connection to a sleeping node after the activator was killed and restarted', async () => {
    const { poolId, nodeIds } = await s.createAppPool({ name: 'restart', image: HTTP_APP_IMAGE, containerPort: HTTP_APP_PORT });
    const nodeId = nodeIds[0]!;
    expect((await s.setSleepPolicy(poolId, { enabled: true, idleWindowSec: 3600 })).status).toBe(202);
    const port = await s.endpoint(nodeId);
    const hostPort = (await s.node(nodeId))!.ports[0]!.hostPort;
    await s.sleepNow(nodeId);

    const [activator] = s.sys.processes('socket-activator');
    expect((await activator!.stop('SIGKILL')).signal).toBe('SIGKILL');
    // Its table outlives it: the port stays caught rather than reaching a stopped container.
    if (mode === 'nftables') expect(await s.redirectedPorts()).toContain(hostPort);
    await s.startActivator();
    await s.waitForCatch(nodeId, 'armed', 10_000);
    // Proxy mode: the new activator listens on the same public port as the one it replaces.
    expect(await s.endpoint(nodeId)).toBe(port);

    const since = Date.now();
    const answer = await httpGet(port, '/', 15_000);
    expect(answer.status).toBe(200);
    expect(answer.body.toString()).toMatch(/^hello from /);
    const woke = await s.watch.next((m) => m.subject === 'activator.evt.woke' && m.data.nodeId === nodeId && m.at >= since, 10_000);
    expect(woke.data).toMatchObject({ trigger: 'connection', mode, heldConnections: 1 });
    await s.waitForCatch(nodeId, 'awake', 5_000);
    if (mode === 'nftables') expect(await s.redirectedPorts()).not.toContain(hostPort);
  }, 90_000);

  it('ends a wake whose port never accepts at the probe timeout: the held connection gets a FIN, wake_failed is on the timeline, the node stays catchable', async () => {
    // The app listens on another port than the one the pool publishes: started, never ready.
    const { poolId, nodeIds } = await s.createAppPool({ name: 'deaf', image: HTTP_APP_IMAGE, containerPort: HTTP_APP_PORT, env: { PORT: String(HTTP_APP_PORT + 1) } });
    const nodeId = nodeIds[0]!;
    expect((await s.setSleepPolicy(poolId, { enabled: true, idleWindowSec: 3600, probeTimeoutMs: 1500 })).status).toBe(202);
    const port = await s.endpoint(nodeId);
    await s.sleepNow(nodeId);

    const since = Date.now();
    const r = await rawGet(port, '/', 10_000);
    expect({ data: r.data, how: r.how }).toEqual({ data: '', how: 'end' });
    expect(r.ms).toBeGreaterThanOrEqual(1400);
    expect(r.ms).toBeLessThan(5_000);
    const failed = await s.watch.next((m) => m.subject === 'activator.evt.failed' && m.data.nodeId === nodeId && m.at >= since, 5_000);
    expect(failed.data).toMatchObject({ heldConnections: 1 });
    expect(failed.data.reason).toMatch(/did not accept within 1500 ms/);
    await s.waitForCatch(nodeId, 'armed', 5_000);

    const items = await eventually(
      async (): Promise<Array<{ kind: string; message: string }>> => (await s.sys.http('GET', `/v1/activity?nodeId=${nodeId}&kind=wake_failed`)).body.items ?? [],
      (found) => found.length > 0,
      10_000,
      'wake_failed on the timeline',
    );
    expect(items).toHaveLength(1);
    expect(items[0]!.message).toMatch(/^wake failed: .*did not accept within 1500 ms/);
    expect((await s.setSleepPolicy(poolId, { enabled: false })).status).toBe(202);
  }, 90_000);
});
