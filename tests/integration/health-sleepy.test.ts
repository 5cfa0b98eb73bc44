import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, EXIT_NODE_IMAGE, startTestSystem, type TestSystem } from '@switchyard/testkit';

const SLEEPY_REASON = 'not actively checked: the pool sleeps when idle (checks would keep it awake)';
const IDLE_WINDOW_SEC = 3;

// health-monitor's checks make a node transmit packets, and the sleep-controller calls a node
// idle only when its transmitted packet count stops growing: with checks running, a node of a
// sleepy pool would never sleep. Real exit-node-manager (stats every 500 ms), health-monitor,
// sleep-controller, socket-activator (proxy mode) and gateway.
describe('health-monitor and a pool that sleeps when idle', () => {
  let sys: TestSystem;

  beforeAll(async () => {
    sys = await startTestSystem();
    await sys.start('api-gateway');
    await sys.start('exit-node-manager', { STATS_INTERVAL_MS: '500' });
    await sys.start('health-monitor');
    await sys.start('socket-activator');
    await sys.start('sleep-controller', { SLEEP_STATS_STALE_MS: '3000' });
  }, 90_000);

  afterAll(async () => {
    await sys?.close();
  });

  async function node(nodeId: string) {
    const res = await sys.http('GET', `/v1/nodes/${nodeId}`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body as { status: string; health: { status: string; reason: string } };
  }

  /** Polls the node every 100 ms until `done` holds; fails after `timeoutMs`, naming the last view. */
  async function until(nodeId: string, what: string, done: (n: Awaited<ReturnType<typeof node>>) => boolean, timeoutMs: number) {
    return eventually(() => node(nodeId), done, timeoutMs, `node ${nodeId} ${what}`, { intervalMs: 100 });
  }

  it('stops checking the node once the pool gets a sleep policy, so it goes to sleep within its idle window', async () => {
    const placed = await sys.http('POST', '/v1/orders', {
      body: {
        type: 'pool.create',
        pool: { name: 'sleepy-checked', kind: 'app', image: EXIT_NODE_IMAGE, ports: [{ name: 'control', containerPort: 8000 }], nodes: { min: 1, max: 1 } },
      },
    });
    expect(placed.status, JSON.stringify(placed.body)).toBe(202);
    const created = await sys.waitForOrder(placed.body.id, ['fulfilled', 'failed'], { timeoutMs: 60_000 });
    expect(created.status, created.reason).toBe('fulfilled');
    const { poolId, nodeIds } = created.result as { poolId: string; nodeIds: string[] };
    const nodeId = nodeIds[0]!;

    // Checked while the pool does not sleep: healthy needs passing checks (default tcp, 2 s apart, rise 2).
    await until(nodeId, 'healthy', (n) => n.status === 'running' && n.health.status === 'healthy', 20_000);

    const put = await sys.http('PUT', `/v1/pools/${poolId}/sleep`, { body: { enabled: true, idleWindowSec: IDLE_WINDOW_SEC } });
    expect(put.status, JSON.stringify(put.body)).toBe(202);
    const policy = await sys.waitForOrder(put.body.id, ['fulfilled', 'failed']);
    expect(policy.status, policy.reason).toBe('fulfilled');

    const unchecked = await until(nodeId, 'unchecked', (n) => n.health.status !== 'healthy', 2_000);
    expect(unchecked.health).toMatchObject({ status: 'unknown', reason: SLEEPY_REASON });

    await until(nodeId, 'sleeping', (n) => n.status === 'sleeping', (IDLE_WINDOW_SEC + 7) * 1000);
  }, 120_000);
});
