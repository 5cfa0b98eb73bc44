import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, docker, startTestSystem, type TestSystem } from '@switchyard/testkit';

// exit-node-manager killed while it is starting a pool's containers: the command is
// redelivered after its ackWait, and the restarted manager finishes the order, reusing the
// containers it already made (found by label) instead of making them twice.
describe('an exit-node-manager crash in the middle of an order', () => {
  let sys: TestSystem;
  beforeAll(async () => {
    sys = await startTestSystem();
    await sys.start('api-gateway');
  });
  afterAll(async () => sys?.close());

  it('loses no order and duplicates no container', async () => {
    const manager = await sys.start('exit-node-manager');
    const placed = await sys.http('POST', '/v1/orders', {
      body: { type: 'pool.create', pool: { name: 'crashy', kind: 'exit', country: 'CA', nodes: { min: 4, max: 4 } } },
    });
    expect(placed.status).toBe(202);
    const poolId = placed.body.result.poolId as string;
    const poolContainers = () => docker.listContainers({ all: true, filters: { label: [`io.switchyard.pool=${poolId}`] } });

    // Kill it as soon as the first container exists: the other three are still to come.
    await eventually(poolContainers, (cs) => cs.length > 0, 10_000, 'a first container', { intervalMs: 25, returnLast: true });
    await manager.stop('SIGKILL');
    const atCrash = await poolContainers();
    expect(atCrash.length).toBeGreaterThanOrEqual(1);
    expect(atCrash.length).toBeLessThan(4);
    expect((await sys.http('GET', `/v1/orders/${placed.body.id}`)).body.status).not.toBe('fulfilled');

    await sys.start('exit-node-manager');
    const order = await sys.waitForOrder(placed.body.id, ['fulfilled', 'failed'], { timeoutMs: 60_000 });
    expect(order.status).toBe('fulfilled');

    const containers = await poolContainers();
    expect(containers).toHaveLength(4);
    expect(containers.every((c) => c.State === 'running')).toBe(true);
    expect(new Set(containers.map((c) => c.Labels['io.switchyard.node']))).toEqual(new Set(order.result.nodeIds));
    for (const c of atCrash) expect(containers.map((x) => x.Id)).toContain(c.Id);
  });
});
