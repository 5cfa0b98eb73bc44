import { describe, expect, it } from 'vitest';
import type { NodeView, PoolSpec, PoolView } from '@switchyard/contracts';
import { aNodeView, aPoolView, aPublishedPort } from '@switchyard/testkit/fixtures';
import { HealthMonitor, type HealthChange } from '../src/monitor.js';
import { SLEEPY_REASON } from '../src/sleep-settings.js';
import type { Probe, ProbeDone } from '../src/probes.js';
import { manualClock } from './manual-clock.js';

const tenantId = '0c0ffee0-1234-4abc-8def-0123456789ab';
const poolId = '11111111-2222-4333-8444-555555555555';
const nodeA = '99999999-8888-4777-8666-555555555551';
const nodeB = '99999999-8888-4777-8666-555555555552';
const at = '2026-01-01T00:00:00.000Z';

const check = { type: 'tcp' as const, intervalMs: 100, timeoutMs: 50, rise: 2, fall: 2, graceMs: 0 };
const appSpec = (hc: PoolSpec['healthCheck'] = check): PoolSpec => ({
  name: 'app',
  kind: 'app',
  image: 'x',
  nodes: { min: 1, max: 2 },
  ports: [{ name: 'web', containerPort: 80 }],
  healthCheck: hc,
});
const pool = (spec = appSpec()): PoolView => aPoolView(spec, { tenantId, poolId });
const nodeView = (nodeId: string, hostPort: number, status: NodeView['status'] = 'running'): NodeView =>
  aNodeView({ pool: pool(), nodeId, name: 'app-0', status, containerId: 'c', ports: [aPublishedPort('web', hostPort, 80)] });

/** A monitor whose probes answer what the test says each port answers. */
function setup(opts: { connfailLimit?: number } = {}) {
  const clock = manualClock();
  const answers = new Map<number, boolean>();
  const probes: Probe[] = [];
  const changes: HealthChange[] = [];
  const forgotten: string[] = [];
  /** While set, probes do not answer until the test calls what they left here. */
  const held: { on: boolean; answers: (() => void)[] } = { on: false, answers: [] };
  let unknown = 0;
  const monitor = new HealthMonitor({
    probe: (p: Probe, done: ProbeDone) => {
      probes.push(p);
      const ok = answers.get(p.port) ?? true;
      const answer = () => done(ok, 5, ok ? '' : 'tcp: ECONNREFUSED');
      if (held.on) held.answers.push(answer);
      else queueMicrotask(answer);
    },
    proxyTarget: 'http://127.0.0.1:9/204',
    connfail: { limit: opts.connfailLimit ?? 2, windowMs: 2000 },
    maxInflight: 100,
    onTransition: (c) => changes.push(c),
    onChange: () => undefined,
    onForget: (id) => forgotten.push(id),
    onUnknown: () => unknown++,
    clock: clock.clock,
    random: () => 0,
  });
  /** Advances time in steps, letting the probe answers (microtasks) land in between. */
  const run = async (ms: number) => {
    for (let t = 0; t < ms; t += 10) {
      clock.advance(10);
      await new Promise((r) => setImmediate(r));
    }
  };
  return { monitor, answers, probes, changes, forgotten, held, run, unknown: () => unknown };
}

describe('health monitor', () => {
  it('checks running nodes from a snapshot and reports each transition once', async () => {
    const t = setup();
    t.monitor.replace({ pools: [pool()], nodes: [nodeView(nodeA, 4001), nodeView(nodeB, 4002)] }, 0);
    t.answers.set(4002, false);
    expect(t.monitor.status().map((h) => h.status)).toEqual(['unknown', 'unknown']);
    await t.run(500);
    expect(t.changes.map((c) => [c.nodeId, c.status])).toEqual([
      [nodeA, 'healthy'],
      [nodeB, 'unhealthy'],
    ]);
    const [a, b] = t.monitor.status({ nodeIds: [nodeA, nodeB, '00000000-0000-4000-8000-000000000000'] });
    // 5 ms of a 50 ms timeout costs 5 points: 100 × (1 − 0.5 × 5/50).
    expect(a).toMatchObject({ status: 'healthy', score: 95, latencyMs: 5 });
    expect(b).toMatchObject({ status: 'unhealthy', score: 0, reason: 'tcp: ECONNREFUSED' });
    expect(a!.lastCheckAt).toMatch(/^\d{4}-/);
    // Every 100 ms, each node: about five checks each in 500 ms, not a storm.
    expect(t.probes.length).toBeGreaterThanOrEqual(8);
    expect(t.probes.length).toBeLessThanOrEqual(12);
  });

  it('filters status by tenant and leaves out nodes it does not know', () => {
    const t = setup();
    t.monitor.replace({ pools: [pool()], nodes: [nodeView(nodeA, 4001)] }, 0);
    expect(t.monitor.status({ tenantId: '0c0ffee0-0000-4abc-8def-0123456789ab' })).toEqual([]);
    expect(t.monitor.status({ nodeIds: ['00000000-0000-4000-8000-000000000000'] })).toEqual([]);
    expect(t.monitor.status({ tenantId }).map((h) => h.nodeId)).toEqual([nodeA]);
  });

  it('marks a node down at once when it dies, stops checking it, and needs rise passes after its restart', async () => {
    const t = setup();
    t.monitor.replace({ pools: [pool()], nodes: [nodeView(nodeA, 4001)] }, 0);
    await t.run(300);
    expect(t.changes.at(-1)?.status).toBe('healthy');
    t.monitor.nodeDied({ tenantId, poolId, nodeId: nodeA, at, containerId: 'c', exitCode: 137, oomKilled: false });
    expect(t.changes.at(-1)).toMatchObject({ status: 'unhealthy', reason: 'container died (exit code 137)' });
    const probesWhenDead = t.probes.length;
    await t.run(500);
    expect(t.probes.length).toBe(probesWhenDead);

    t.monitor.nodeStarted({ tenantId, poolId, nodeId: nodeA, at, containerId: 'c2', ports: nodeView(nodeA, 4003).ports, startMs: 100 });
    expect(t.monitor.status()[0]).toMatchObject({ status: 'unhealthy' });
    await t.run(50);
    expect(t.monitor.status()[0]!.status).toBe('unhealthy');
    await t.run(200);
    expect(t.changes.at(-1)).toMatchObject({ status: 'healthy' });
    expect(t.probes.at(-1)!.port).toBe(4003);
    // The died event is remembered in the score for a minute.
    expect(t.monitor.status()[0]!.score).toBeLessThan(100);
  });

  it('checks a node restarted while a probe of it was in flight as soon as that probe answers', async () => {
    const t = setup();
    t.held.on = true;
    t.monitor.replace({ pools: [pool()], nodes: [nodeView(nodeA, 4001)] }, 0);
    await t.run(20);
    expect(t.held.answers).toHaveLength(1);
    t.monitor.nodeStarted({ tenantId, poolId, nodeId: nodeA, at, containerId: 'c2', ports: nodeView(nodeA, 4003).ports, startMs: 10 });
    t.held.on = false;
    t.held.answers.shift()!();
    await t.run(20);
    expect(t.probes.map((p) => p.port)).toEqual([4001, 4003]);
  });

  it('checks a node a snapshot finds running again while a probe of it was in flight as soon as that probe answers', async () => {
    const t = setup();
    t.held.on = true;
    t.monitor.replace({ pools: [pool()], nodes: [nodeView(nodeA, 4001)] }, 0);
    await t.run(20);
    t.monitor.replace({ pools: [pool()], nodes: [nodeView(nodeA, 4001, 'stopped')] }, 20);
    t.monitor.replace({ pools: [pool()], nodes: [nodeView(nodeA, 4003)] }, 20);
    t.held.on = false;
    t.held.answers.shift()!();
    await t.run(20);
    expect(t.probes.map((p) => p.port)).toEqual([4001, 4003]);
  });

  it("marks a node down when Docker's HEALTHCHECK reports it unhealthy, and ignores healthy reports", async () => {
    const t = setup();
    t.monitor.replace({ pools: [pool()], nodes: [nodeView(nodeA, 4001)] }, 0);
    await t.run(300);
    const report = { tenantId, poolId, nodeId: nodeA, at, containerId: 'c' };
    t.monitor.nodeHealthReported({ ...report, status: 'healthy' });
    t.monitor.nodeHealthReported({ ...report, status: 'starting' });
    expect(t.changes.map((c) => c.status)).toEqual(['healthy']);
    t.monitor.nodeHealthReported({ ...report, status: 'unhealthy' });
    expect(t.changes.at(-1)).toMatchObject({ status: 'unhealthy', reason: 'the container HEALTHCHECK reports unhealthy' });
    // Checks still run and, passing, bring it back after rise.
    await t.run(300);
    expect(t.changes.at(-1)?.status).toBe('healthy');
  });

  it('marks a node down after connfail-limit connection failures within the window', async () => {
    const t = setup({ connfailLimit: 2 });
    t.monitor.replace({ pools: [pool()], nodes: [nodeView(nodeA, 4001)] }, 0);
    await t.run(300);
    const fail = { tenantId, poolId, nodeId: nodeA, at, error: 'ECONNREFUSED' };
    t.monitor.connectionFailed(fail);
    expect(t.monitor.status()[0]!.status).toBe('healthy');
    await t.run(3000);
    t.monitor.connectionFailed(fail);
    expect(t.monitor.status()[0]!.status).toBe('healthy');
    t.monitor.connectionFailed(fail);
    expect(t.changes.at(-1)).toMatchObject({ status: 'unhealthy', reason: expect.stringContaining('2 connection failures') });
  });

  it('does not count failures in the grace period after a start', async () => {
    const t = setup();
    t.monitor.replace({ pools: [pool(appSpec({ ...check, graceMs: 1000 }))], nodes: [nodeView(nodeA, 4001, 'starting')] }, 0);
    t.answers.set(4001, false);
    t.monitor.nodeStarted({ tenantId, poolId, nodeId: nodeA, at, containerId: 'c', ports: nodeView(nodeA, 4001).ports, startMs: 1 });
    await t.run(900);
    expect(t.changes).toEqual([]);
    t.monitor.connectionFailed({ tenantId, poolId, nodeId: nodeA, at, error: 'x' });
    t.monitor.connectionFailed({ tenantId, poolId, nodeId: nodeA, at, error: 'x' });
    expect(t.changes).toEqual([]);
    await t.run(400);
    expect(t.changes.map((c) => c.status)).toEqual(['unhealthy']);
  });

  it('takes stopped, draining and removed nodes out: unhealthy, not checked, or forgotten', async () => {
    const t = setup();
    t.monitor.replace({ pools: [pool()], nodes: [nodeView(nodeA, 4001), nodeView(nodeB, 4002)] }, 0);
    await t.run(300);
    t.monitor.nodeStopped({ tenantId, poolId, nodeId: nodeA, at, containerId: 'c', reason: 'order' });
    t.monitor.nodeDraining({ tenantId, poolId, nodeId: nodeB, at, reason: 'scale down' });
    expect(t.monitor.status().map((h) => [h.status, h.reason])).toEqual([
      ['unhealthy', 'stopped: order'],
      ['unhealthy', 'draining: scale down'],
    ]);
    const n = t.probes.length;
    await t.run(300);
    expect(t.probes.length).toBe(n);
    t.monitor.nodeRemoved({ tenantId, poolId, nodeId: nodeB, at, reason: 'scale down' });
    expect(t.forgotten).toEqual([nodeB]);
    expect(t.monitor.status().map((h) => h.nodeId)).toEqual([nodeA]);
  });

  it('a snapshot drops nodes it no longer lists but keeps what newer events said', async () => {
    const t = setup();
    t.monitor.replace({ pools: [pool()], nodes: [nodeView(nodeA, 4001), nodeView(nodeB, 4002)] }, 0);
    await t.run(300);
    const requestedAt = 300;
    await t.run(10);
    // Died after the snapshot was asked for; the snapshot still says running.
    t.monitor.nodeDied({ tenantId, poolId, nodeId: nodeA, at, containerId: 'c', exitCode: 1, oomKilled: false });
    t.monitor.replace({ pools: [pool()], nodes: [nodeView(nodeA, 4001)] }, requestedAt);
    expect(t.forgotten).toEqual([nodeB]);
    expect(t.monitor.status()).toMatchObject([{ nodeId: nodeA, status: 'unhealthy' }]);
  });

  it('trusts an event from shortly before a snapshot was asked for over the snapshot, an old one not', async () => {
    const t = setup();
    t.monitor.replace({ pools: [pool()], nodes: [nodeView(nodeA, 4001, 'starting')] }, 0);
    // The manager publishes node.evt.started before its row says running.
    t.monitor.nodeStarted({ tenantId, poolId, nodeId: nodeA, at, containerId: 'c', ports: nodeView(nodeA, 4001).ports, startMs: 1 });
    await t.run(1000);
    t.monitor.replace({ pools: [pool()], nodes: [nodeView(nodeA, 4001, 'starting')] }, 1000);
    expect(t.monitor.node(nodeA)?.lifecycle).toBe('running');
    await t.run(6000);
    t.monitor.replace({ pools: [pool()], nodes: [nodeView(nodeA, 4001, 'stopped')] }, 7000);
    expect(t.monitor.node(nodeA)?.lifecycle).toBe('stopped');
  });

  it('re-resolves checks when the pool changes, and asks for a snapshot about unknown pools', async () => {
    const t = setup();
    t.monitor.replace({ pools: [pool()], nodes: [nodeView(nodeA, 4001)] }, 0);
    await t.run(300);
    t.monitor.poolChanged({ tenantId, poolId, name: 'app', spec: appSpec({ ...check, type: 'http', path: '/ready', intervalMs: 1000 }), at });
    await t.run(20);
    expect(t.probes.at(-1)!.type).toBe('http');
    expect(t.probes.at(-1)!.request?.toString()).toContain('GET /ready HTTP/1.1');
    const n = t.probes.length;
    await t.run(500);
    expect(t.probes.length).toBe(n);
    t.monitor.nodeStarted({ tenantId, poolId: '22222222-2222-4333-8444-555555555555', nodeId: nodeB, at, containerId: 'c', ports: [], startMs: 1 });
    expect(t.unknown()).toBe(1);
  });

  it('defaults: exit pools are checked through their proxy port, app pools by tcp on the first port', () => {
    const t = setup();
    const exit: PoolSpec = { name: 'jp', kind: 'exit', country: 'JP', nodes: { min: 1, max: 1 } };
    const exitNode: NodeView = {
      ...nodeView(nodeA, 0),
      kind: 'exit',
      ports: [
        { name: 'proxy', containerPort: 8888, hostIp: '127.0.0.1', hostPort: 5001 },
        { name: 'control', containerPort: 8000, hostIp: '127.0.0.1', hostPort: 5002 },
      ],
    };
    const appPool = { ...pool(appSpec(undefined)), poolId: '22222222-2222-4333-8444-555555555555' };
    t.monitor.replace({ pools: [{ ...pool(exit) }, appPool], nodes: [exitNode, { ...nodeView(nodeB, 5003), poolId: appPool.poolId }] }, 0);
    const probes = (t.monitor as unknown as { nodes: Map<string, { check: { probe: Probe } }> }).nodes;
    expect(probes.get(nodeA)!.check.probe).toMatchObject({ type: 'proxy', port: 5001 });
    expect(probes.get(nodeA)!.check.probe.request?.toString()).toMatch(/^GET http:\/\/127\.0\.0\.1:9\/204 /);
    expect(probes.get(nodeB)!.check.probe).toMatchObject({ type: 'tcp', port: 5003 });
  });
});

describe('health monitor and pools that sleep when idle', () => {
  const policy = (enabled: boolean) => ({ enabled, idleWindowSec: 5, minAwake: 0, probeIntervalMs: 50, probeTimeoutMs: 30_000 });
  const policyEvent = (enabled: boolean) => ({ tenantId, poolId, policy: policy(enabled), at });
  const sleepySpec = (): PoolSpec => ({ ...appSpec(), sleep: policy(true) });

  it('schedules no check for a running node of a pool whose spec says it sleeps, and says why it is unknown', async () => {
    const t = setup();
    t.monitor.replace({ pools: [pool(sleepySpec())], nodes: [nodeView(nodeA, 4001)] }, 0);
    await t.run(1000);
    expect(t.probes).toEqual([]);
    expect(t.monitor.status()).toMatchObject([{ status: 'unknown', reason: SLEEPY_REASON }]);
    // Passive signals still count.
    t.monitor.nodeHealthReported({ tenantId, poolId, nodeId: nodeA, at, containerId: 'c', status: 'unhealthy' });
    expect(t.changes.map((c) => c.status)).toEqual(['unhealthy']);
  });

  it("follows the sleep-controller's reply over the spec, and keeps what events said when it did not answer", async () => {
    const t = setup();
    t.monitor.replace({ pools: [pool()], nodes: [nodeView(nodeA, 4001)] }, 0, new Map([[tenantId, [{ poolId, policy: policy(true) }]]]));
    await t.run(500);
    expect(t.probes).toEqual([]);
    await t.run(6000);
    // The sleep-controller is silent this time: its last word stands, though the spec says nothing.
    t.monitor.replace({ pools: [pool()], nodes: [nodeView(nodeA, 4001)] }, 6500);
    await t.run(500);
    expect(t.probes).toEqual([]);
    // It answers with no policy for the pool: the spec decides, and the spec has none.
    t.monitor.replace({ pools: [pool()], nodes: [nodeView(nodeA, 4001)] }, 7000, new Map([[tenantId, []]]));
    await t.run(500);
    expect(t.probes.length).toBeGreaterThan(0);
  });

  it('a policy event enabling sleep stops the checks without publishing a transition; disabling starts them again', async () => {
    const t = setup();
    t.monitor.replace({ pools: [pool()], nodes: [nodeView(nodeA, 4001)] }, 0);
    await t.run(300);
    expect(t.changes.map((c) => c.status)).toEqual(['healthy']);

    t.monitor.sleepPolicyChanged(policyEvent(true));
    const probesWhenSleepy = t.probes.length;
    await t.run(1000);
    expect(t.probes.length).toBe(probesWhenSleepy);
    expect(t.monitor.status()).toMatchObject([{ status: 'unknown', reason: SLEEPY_REASON }]);
    expect(t.changes.map((c) => c.status)).toEqual(['healthy']);
    // A resync whose reply predates the event does not undo it.
    t.monitor.replace({ pools: [pool()], nodes: [nodeView(nodeA, 4001)] }, 1300, new Map([[tenantId, []]]));
    await t.run(300);
    expect(t.probes.length).toBe(probesWhenSleepy);

    t.monitor.sleepPolicyChanged(policyEvent(false));
    await t.run(300);
    expect(t.probes.length).toBeGreaterThan(probesWhenSleepy);
    expect(t.changes.map((c) => c.status)).toEqual(['healthy', 'healthy']);
  });

  it('a sleepy node woken from sleep is unknown again, not the unhealthy its stop made it', async () => {
    const t = setup();
    t.monitor.replace({ pools: [pool(sleepySpec())], nodes: [nodeView(nodeA, 4001)] }, 0);
    t.monitor.nodeStopped({ tenantId, poolId, nodeId: nodeA, at, containerId: 'c', reason: 'sleep' });
    expect(t.monitor.status()[0]!.status).toBe('unhealthy');
    t.monitor.nodeStarted({ tenantId, poolId, nodeId: nodeA, at, containerId: 'c', ports: nodeView(nodeA, 4001).ports, startMs: 1 });
    await t.run(500);
    expect(t.probes).toEqual([]);
    expect(t.monitor.status()).toMatchObject([{ status: 'unknown', reason: SLEEPY_REASON }]);
  });
});
