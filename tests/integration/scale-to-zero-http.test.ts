import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { HTTP_APP_IMAGE, HTTP_APP_PORT, httpGet, MODES, runClient, startScaleToZero, type HttpAnswer, type ScaleToZero } from '@switchyard/testkit';

// Scale to zero of an HTTP app on real containers, in both activator modes: idle detection
// from outbound packets, curl answered by a node that slept, a burst of connections to a
// sleeping node held and all answered by one wake, and the activator out of the path once
// the node is awake.
describe.each(MODES)('scale to zero of an HTTP app, activator in %s mode', (mode) => {
  let s: ScaleToZero;

  beforeAll(async () => {
    s = await startScaleToZero(mode);
  }, 120_000);
  afterAll(async () => {
    await s?.close();
  });

  it('puts an idle node to sleep after its window, and keeps a node that answers traffic awake', async () => {
    const { poolId, nodeIds } = await s.createAppPool({ name: 'idle', image: HTTP_APP_IMAGE, containerPort: HTTP_APP_PORT, nodes: 2 });
    const [busy, idle] = nodeIds as [string, string];
    const busyPort = await s.endpoint(busy);
    const idleView = (await s.node(idle))!;
    const idleStartedAt = Date.parse(idleView.startedAt!);

    // The busy node answers a request every 200 ms, 25 a window: its transmitted packets keep
    // growing even if the machine stalls for a while.
    let running = true;
    let answered = 0;
    const traffic = (async () => {
      const until = Date.now() + 60_000;
      while (running && Date.now() < until) {
        const res = await httpGet(busyPort, '/', 2_000).catch(() => undefined);
        if (res?.status === 200) answered++;
        await sleep(200);
      }
    })();
    try {
      const policy = await s.setSleepPolicy(poolId, { enabled: true, idleWindowSec: 5 });
      expect(policy.status, JSON.stringify(policy.body)).toBe(202);

      const slept = await s.watch.next((m) => m.subject === 'sleep.evt.slept' && m.data.nodeId === idle, 30_000);
      expect(slept.data.reason).toMatch(/idle/);
      expect(slept.data.idleSec).toBeGreaterThanOrEqual(5);
      // The window counts from the node's start at the earliest.
      expect(Date.parse(slept.data.at) - idleStartedAt).toBeGreaterThanOrEqual(5_000);
      // Asleep, it keeps the ports it had: that is where clients and the activator find it.
      expect((await s.waitForNodeStatus(idle, 'sleeping', 10_000)).ports).toEqual(idleView.ports);

      // Two more windows: the busy node is still up, and was never put to sleep.
      await sleep(10_000);
      expect(s.watch.seen.filter((m) => m.subject === 'sleep.evt.slept' && m.data.nodeId === busy)).toEqual([]);
      expect((await s.node(busy))?.status).toBe('running');
      expect(answered).toBeGreaterThan(40);
    } finally {
      running = false;
      await traffic;
    }
    // The rest of this file decides itself when nodes sleep.
    expect((await s.setSleepPolicy(poolId, { enabled: false })).status).toBe(202);
  }, 90_000);

  it('a node that slept when idle answers curl, run once with no retry', async () => {
    const { poolId, nodeIds } = await s.createAppPool({ name: 'curl', image: HTTP_APP_IMAGE, containerPort: HTTP_APP_PORT });
    const nodeId = nodeIds[0]!;
    const port = await s.endpoint(nodeId);
    expect((await s.setSleepPolicy(poolId, { enabled: true, idleWindowSec: 2 })).status).toBe(202);
    const sleptAt = await s.sleptWhenIdle(nodeId);

    const curl = await runClient('curl', ['-sS', '--max-time', '15', `http://127.0.0.1:${port}/`], 20_000);
    expect({ code: curl.code, err: curl.stderr.trim() }).toEqual({ code: 0, err: '' });
    expect(curl.stdout).toMatch(/^hello from \S+\n$/);
    const woke = await s.watch.next((m) => m.subject === 'activator.evt.woke' && m.data.nodeId === nodeId && m.at >= sleptAt, 10_000);
    expect(woke.data).toMatchObject({ trigger: 'connection', mode, heldConnections: 1 });
    expect((await s.setSleepPolicy(poolId, { enabled: false })).status).toBe(202);
  }, 90_000);

  it('answers 200 concurrent connections to a sleeping node in full with one wake, none refused or reset, then steps out of the path', async () => {
    const { poolId, nodeIds } = await s.createAppPool({ name: 'burst', image: HTTP_APP_IMAGE, containerPort: HTTP_APP_PORT });
    const nodeId = nodeIds[0]!;
    expect((await s.setSleepPolicy(poolId, { enabled: true, idleWindowSec: 3600 })).status).toBe(202);
    const port = await s.endpoint(nodeId);
    await s.sleepNow(nodeId);
    if (mode === 'nftables') expect(await s.redirectedPorts()).toContain((await s.node(nodeId))!.ports[0]!.hostPort);

    const since = Date.now();
    const size = 16_384;
    const results = await Promise.allSettled(Array.from({ length: 200 }, () => httpGet(port, `/bytes/${size}`, 30_000)));
    const failures = results.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
    const events = s.watch.seen.filter((m) => m.at >= since).map((m) => `${m.subject} ${JSON.stringify(m.data)}`);
    const activatorLog = s.sys.processes('socket-activator')[0]?.output().split('\n').slice(-15).join('\n');
    expect(failures, `${failures.length} of 200 failed; events since: ${events.join('\n')}\nactivator: ${activatorLog}`).toEqual([]);
    const answers = results.map((r) => (r as PromiseFulfilledResult<HttpAnswer>).value);
    expect(answers.filter((a) => a.status !== 200 || a.body.length !== size)).toEqual([]);

    const woke = await s.watch.next((m) => m.subject === 'activator.evt.woke' && m.data.nodeId === nodeId && m.at >= since, 10_000);
    expect(woke.data).toMatchObject({ trigger: 'connection', mode, heldConnections: 200 });
    expect(woke.data.firstByteMs).toBeGreaterThanOrEqual(woke.data.readyMs);
    await sleep(500);
    expect(s.watch.seen.filter((m) => m.subject === 'activator.evt.woke' && m.data.nodeId === nodeId && m.at >= since)).toHaveLength(1);
    expect((await s.node(nodeId))?.status).toBe('running');
    await s.waitForCatch(nodeId, 'awake', 5_000);

    const state = await s.catchState();
    const hostPort = (await s.node(nodeId))!.ports[0]!.hostPort;
    if (mode === 'nftables') {
      expect(state.redirected).not.toContain(hostPort);
      expect(await s.redirectedPorts()).not.toContain(hostPort);
      // The next connection goes straight to the node: it is answered while the activator
      // is frozen, which a redirected connection could not be.
      const activator = s.sys.processes('socket-activator')[0]!;
      process.kill(activator.pid, 'SIGSTOP');
      try {
        const direct = await httpGet(port, '/', 3_000);
        expect(direct.status).toBe(200);
      } finally {
        process.kill(activator.pid, 'SIGCONT');
      }
    } else {
      // The activator keeps forwarding the public port, without holding or waking.
      const next = await httpGet(port, '/', 3_000);
      expect(next.status).toBe(200);
      await sleep(300);
      expect(s.watch.seen.filter((m) => m.subject === 'activator.evt.woke' && m.data.nodeId === nodeId && m.at >= since)).toHaveLength(1);
    }
  }, 120_000);
});
