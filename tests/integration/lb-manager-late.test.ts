import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { freePort, proxiedGet, startLoopbackTarget, startTestSystem, type LoopbackTarget, type TestSystem } from '@switchyard/testkit';

// The load balancer builds its routing table from exit-node-manager's snapshot. Started while
// the manager is away, its first rebuild fails; it must try again soon rather than route
// blind until its periodic rebuild (LB_REBUILD_INTERVAL_MS, 30 s by default, left so here).
describe('a load balancer started while exit-node-manager is down', () => {
  let sys: TestSystem;
  let target: LoopbackTarget;
  let nodeId: string;
  let proxyPort: number;

  beforeAll(async () => {
    target = await startLoopbackTarget();
    proxyPort = await freePort();
    sys = await startTestSystem({ services: ['api-gateway', 'exit-node-manager'] });
    const placed = await sys.http('POST', '/v1/orders', {
      body: { type: 'pool.create', pool: { name: 'late', kind: 'exit', country: 'JP', network: 'host', nodes: { min: 1, max: 1 } } },
    });
    expect(placed.status, JSON.stringify(placed.body)).toBe(202);
    const done = await sys.waitForOrder(placed.body.id, ['fulfilled', 'failed'], { timeoutMs: 60_000 });
    expect(done.status, JSON.stringify(done)).toBe('fulfilled');
    [nodeId] = done.result.nodeIds;
    // The manager goes away; its node keeps running.
    const [manager] = sys.processes('exit-node-manager');
    expect(await manager!.stop('SIGTERM')).toMatchObject({ code: 0 });
  }, 120_000);

  afterAll(async () => {
    await sys?.close();
    await target?.close();
  });

  it('routes to the running node within 2 s of the manager coming up', async () => {
    await sys.start('load-balancer', { LB_PROXY_PORT: String(proxyPort), LB_WORKERS: '1' });
    // Blind for now: without a snapshot the load balancer knows no pool to route to.
    expect((await proxiedGet(proxyPort, `${target.url}/hello`)).status).toBe(503);

    await sys.start('exit-node-manager');
    const upAt = performance.now();
    const answer = await vi.waitFor(
      async () => {
        const res = await proxiedGet(proxyPort, `${target.url}/hello`, 1_000);
        expect(res.status).toBe(200);
        return res;
      },
      { timeout: 5_000, interval: 100 },
    );
    const ms = Math.round(performance.now() - upAt);
    expect(answer).toMatchObject({ body: 'hello', via: nodeId });
    expect(ms, `first answer ${ms} ms after the manager was ready`).toBeLessThan(2_000);
  }, 60_000);
});
