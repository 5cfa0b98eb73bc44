import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { docker, eventually, poolOrder, startTestSystem, type TestSystem } from '@switchyard/testkit';

// A drain waits up to the pool's drainSec (an hour at most) for connections to end. It runs in
// the background: the command is acked once the drain is recorded, so four slow drains hold
// none of the manager's four command slots, and a restarted manager finishes them.
describe('drains in the background', () => {
  let sys: TestSystem;
  let nc: NatsConnection;
  let traffic: Subscription;
  /** What the stand-in load balancer says every node still has open. */
  let openConnections = 1;

  beforeAll(async () => {
    sys = await startTestSystem({ services: ['api-gateway', 'exit-node-manager'] });
    nc = await sys.natsClient();
    // The test's load balancer: every node keeps a connection open until the test says not.
    traffic = nc.subscribe('lb.req.traffic', {
      callback: (err, msg) => {
        if (err) return;
        const { nodeIds = [] } = msg.json<{ nodeIds?: string[] }>();
        const nodes = nodeIds.map((nodeId) => ({
          nodeId,
          activeConnections: openConnections,
          totalConnections: openConnections,
          failedConnections: 0,
          rxBytes: 0,
          txBytes: 0,
        }));
        msg.respond(JSON.stringify({ nodes }));
      },
    });
  });
  afterAll(async () => {
    traffic?.unsubscribe();
    await sys?.close();
  });

  const order = async (body: unknown, key?: string) => {
    const placed = await sys.http('POST', '/v1/orders', { body, ...(key ? { key } : {}) });
    expect(placed.status).toBe(202);
    return placed.body as { id: string; result: { poolId?: string } };
  };
  const fulfilled = async (id: string, key?: string) => sys.waitForOrder(id, ['fulfilled', 'failed'], { timeoutMs: 60_000, ...(key ? { key } : {}) });

  it("four drains of an hour hold no command slot: a fifth tenant's pool is created meanwhile, and a restarted manager finishes them", async () => {
    const slow = { ...poolOrder('slow-1', 'JP', 2), pool: { ...poolOrder('slow-1', 'JP', 2).pool, drainSec: 3600 } };
    const pools: string[] = [];
    for (const name of ['slow-1', 'slow-2', 'slow-3', 'slow-4']) {
      const placed = await order({ ...slow, pool: { ...slow.pool, name } });
      expect((await fulfilled(placed.id)).status).toBe('fulfilled');
      pools.push(placed.result.poolId!);
    }

    // One scale-down and three deletes, each waiting on a connection that never ends.
    const drains = [await order({ type: 'pool.scale', poolId: pools[0], nodes: { min: 1, max: 1 } })];
    for (const poolId of pools.slice(1)) drains.push(await order({ type: 'pool.delete', poolId }));
    await eventually(
      () => sys.db.query<{ n: string }>('select count(*)::text as n from pool_drains'),
      (rows) => rows[0]?.n === '4',
      30_000,
      'four drains recorded',
      { intervalMs: 100 },
    );

    // Another tenant's order goes through while all four wait.
    const fifth = await sys.http('POST', '/v1/tenants', { body: { name: 'fifth' } });
    const placed = await order(poolOrder('prompt', 'NL', 1), fifth.body.apiKey);
    const done = await fulfilled(placed.id, fifth.body.apiKey);
    expect(done.status).toBe('fulfilled');
    for (const d of drains) expect((await sys.http('GET', `/v1/orders/${d.id}`)).body.status).toBe('in_progress');

    // A crash mid-drain: the restarted manager picks the recorded drains up again.
    await sys.processes('exit-node-manager')[0]!.stop('SIGKILL');
    await sys.start('exit-node-manager');
    openConnections = 0;
    for (const d of drains) expect((await fulfilled(d.id)).status).toBe('fulfilled');

    const left = async (poolId: string) => (await docker.listContainers({ all: true, filters: { label: [`io.switchyard.pool=${poolId}`] } })).length;
    expect(await left(pools[0]!)).toBe(1);
    for (const poolId of pools.slice(1)) expect(await left(poolId)).toBe(0);
    const deleted = await sys.db.query<{ status: string }>('select status from pools where id = any($1::uuid[]) order by status', [pools.slice(1)]);
    expect(deleted.map((p) => p.status)).toEqual(['deleted', 'deleted', 'deleted']);
    expect(await sys.db.query('select * from pool_drains')).toEqual([]);
  });
});
