import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NatsConnection } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import { eventually, docker, startTestSystem, natsRequest, watchSubjects, type TestSystem, type SubjectWatch } from '@switchyard/testkit';

interface Health {
  nodeId: string;
  tenantId: string;
  poolId: string;
  status: string;
  reason: string;
}

// Passive signals with active checks five seconds apart, so only the signal can explain a
// quick change: the manager's died event, the load balancer's connection failures. The
// monitor starts after the pool exists, so it finds the node through pool.req.snapshot.
describe('health-monitor passive signals', () => {
  let sys: TestSystem;
  let nc: NatsConnection;
  let watch: SubjectWatch;
  let redis: Redis;
  let poolId: string;
  let nodeId: string;
  let tenantId: string;

  const status = async (): Promise<Health | undefined> => (await natsRequest<{ nodes: Health[] }>(nc, 'health.req.status', { nodeIds: [nodeId] })).nodes[0];

  async function waitFor(match: (h: Health | undefined) => boolean, timeoutMs: number): Promise<Health | undefined> {
    let last: Health | undefined;
    return eventually(async () => (last = await status().catch(() => last)), match, timeoutMs, 'a matching health', { intervalMs: 100 });
  }

  beforeAll(async () => {
    redis = new Redis(process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379', { lazyConnect: true, maxRetriesPerRequest: 1 });
    sys = await startTestSystem({ services: ['api-gateway', 'exit-node-manager'] });
    nc = await sys.natsClient();
    watch = watchSubjects(nc, ['health.evt.changed', 'node.evt.started']);
    const placed = await sys.http('POST', '/v1/orders', {
      body: {
        type: 'pool.create',
        pool: {
          name: 'slow',
          kind: 'app',
          image: 'switchyard/exit-node:dev',
          ports: [{ name: 'control', containerPort: 8000 }],
          nodes: { min: 1, max: 1 },
          healthCheck: { type: 'tcp', intervalMs: 5000, timeoutMs: 1000, rise: 1, fall: 3, graceMs: 0 },
        },
      },
    });
    const order = await sys.waitForOrder(placed.body.id, ['fulfilled', 'failed'], { timeoutMs: 60_000 });
    expect(order.status).toBe('fulfilled');
    poolId = order.result.poolId;
    nodeId = order.result.nodeIds[0];
    tenantId = (await sys.db.query<{ id: string }>("select id from tenants where name = 'admin'"))[0]!.id;
    await sys.start('health-monitor');
  }, 120_000);

  afterAll(async () => {
    await sys?.close();
    redis?.disconnect();
  });

  it('finds a node that existed before it started, from the snapshot', async () => {
    const h = await waitFor((x) => x?.status === 'healthy', 10_000);
    expect(h).toMatchObject({ poolId, reason: '1 check passed' });
  });

  it('marks a node down after two connection failures within the window, not after one', async () => {
    await waitFor((x) => x?.status === 'healthy', 10_000);
    const fail = () => nc.publish('lb.evt.connfail', JSON.stringify({ tenantId, poolId, nodeId, at: new Date().toISOString(), error: 'ECONNREFUSED' }));
    fail();
    // Fixed waits here let time pass: after one failure, the node must stay healthy.
    await sleep(500);
    expect((await status())?.status).toBe('healthy');
    await sleep(2_100);
    fail();
    await sleep(300);
    expect((await status())?.status).toBe('healthy');
    const sentAt = Date.now();
    fail();
    const down = await watch.next((m) => m.subject === 'health.evt.changed' && m.data.nodeId === nodeId && m.data.status === 'unhealthy', 2_000);
    expect(down.at - sentAt).toBeLessThan(500);
    expect(down.data.reason).toMatch(/^2 connection failures reported by the load balancer/);
    // The node itself is fine: the next check (rise 1) brings it back.
    await waitFor((x) => x?.status === 'healthy', 8_000);
  }, 20_000);

  it('a docker kill marks the node down within 1 s through the died event, long before a check could', async () => {
    await waitFor((x) => x?.status === 'healthy', 10_000);
    const [container] = await docker.listContainers({ filters: { label: [`io.switchyard.node=${nodeId}`] } });
    const killedAt = Date.now();
    await docker.getContainer(container!.Id).kill();
    const down = await watch.next((m) => m.subject === 'health.evt.changed' && m.data.nodeId === nodeId && m.data.status === 'unhealthy' && m.at > killedAt, 3_000);
    expect(down.at - killedAt).toBeLessThan(1_000);
    expect(down.data.reason).toBe('container died (exit code 137)');
    // The manager restarts it; the check right after its start passes.
    await watch.next((m) => m.subject === 'node.evt.started' && m.data.nodeId === nodeId && m.at > killedAt, 30_000);
    await watch.next((m) => m.subject === 'health.evt.changed' && m.data.nodeId === nodeId && m.data.status === 'healthy' && m.at > down.at, 5_000);
  }, 45_000);

  it('forgets the nodes of a deleted pool, in its answers and in Redis', async () => {
    const stored = () => redis.hget(`health:${nodeId}`, 'status');
    await waitFor((x) => x?.status === 'healthy', 15_000);
    // Written to Redis within its one-second flush.
    expect(await eventually(stored, (s) => s === 'healthy', 2_500, 'healthy in Redis', { returnLast: true })).toBe('healthy');
    const placed = await sys.http('POST', '/v1/orders', { body: { type: 'pool.delete', poolId } });
    expect(placed.status).toBe(202);
    await sys.waitForOrder(placed.body.id, ['fulfilled'], { timeoutMs: 30_000 });
    await waitFor((x) => x === undefined, 5_000);
    const exists = () => redis.exists(`health:${nodeId}`);
    expect(await eventually(exists, (n) => n === 0, 2_500, 'gone from Redis', { returnLast: true })).toBe(0);
  }, 45_000);
});
