import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import {
  eventually,
  docker,
  startTestSystem,
  natsRequest,
  watchSubjects,
  startSpeedTestTarget,
  type TestSystem,
  type SubjectWatch,
  type SpeedTestTarget,
} from '@switchyard/testkit';

// Timeouts as long as the interval: on a loaded 2-core machine a check through a container
// can take over 100 ms, and a flapping node would blur what the tests look at.
const fast = { intervalMs: 250, timeoutMs: 250, rise: 2, fall: 2, graceMs: 0 };

interface Health {
  nodeId: string;
  tenantId: string;
  status: string;
  score: number;
  latencyMs: number | null;
  lastCheckAt: string | null;
  reason: string;
}

// health-monitor against the real exit-node-manager and real containers: a host-network exit
// pool checked through its proxy, app pools checked by http (a good and a wrong answer) and
// by the default tcp check, a docker kill, speed tests, and malformed requests.
describe('health-monitor', () => {
  let sys: TestSystem;
  let target: SpeedTestTarget;
  let nc: NatsConnection;
  let watch: SubjectWatch;
  let redis: Redis;
  const pools: Record<string, { poolId: string; nodeIds: string[] }> = {};

  async function createPool(pool: Record<string, unknown>): Promise<{ poolId: string; nodeIds: string[] }> {
    const placed = await sys.http('POST', '/v1/orders', { body: { type: 'pool.create', pool } });
    expect(placed.status).toBe(202);
    const order = await sys.waitForOrder(placed.body.id, ['fulfilled', 'failed'], { timeoutMs: 60_000 });
    expect(order.status, JSON.stringify(order)).toBe('fulfilled');
    return { poolId: order.result.poolId, nodeIds: order.result.nodeIds };
  }

  async function health(nodeIds: string[]): Promise<Health[]> {
    return (await natsRequest<{ nodes: Health[] }>(nc, 'health.req.status', { nodeIds })).nodes;
  }

  async function waitForStatus(nodeId: string, status: string, timeoutMs: number, reason?: string): Promise<Health> {
    let last: Health | undefined;
    const read = async () => ([last] = await health([nodeId]).catch(() => [last!]))[0];
    const done = (h: Health | undefined) => h?.status === status && (reason === undefined || h.reason === reason);
    return (await eventually(read, done, timeoutMs, `node ${nodeId} ${status}`, { intervalMs: 100 }))!;
  }

  beforeAll(async () => {
    target = await startSpeedTestTarget();
    redis = new Redis(process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379', { lazyConnect: true, maxRetriesPerRequest: 1 });
    sys = await startTestSystem();
    nc = await sys.natsClient();
    watch = watchSubjects(nc, ['health.evt.changed', 'health.evt.speedtest', 'node.evt.died', 'node.evt.started']);
    await sys.start('api-gateway');
    await sys.start('exit-node-manager');
    await sys.start('health-monitor', {
      HEALTH_PROXY_TARGET: `${target.url}/204`,
      SPEEDTEST_URL: target.url,
      SPEEDTEST_BYTES: '4000000',
      SPEEDTEST_TIMEOUT_MS: '10000',
    });
    const [exit, good, bad, plain] = await Promise.all([
      // No target in the check: the monitor's HEALTH_PROXY_TARGET, through the node's proxy.
      // The grace period covers the moment between the container's start and its proxy listening.
      createPool({ name: 'hx', kind: 'exit', country: 'JP', network: 'host', nodes: { min: 1, max: 1 }, healthCheck: { type: 'proxy', ...fast, graceMs: 2000 } }),
      createPool({
        name: 'web-ok',
        kind: 'app',
        image: 'switchyard/exit-node:dev',
        ports: [{ name: 'control', containerPort: 8000 }],
        nodes: { min: 1, max: 1 },
        healthCheck: { type: 'http', path: '/healthz', ...fast },
      }),
      // The exit-node proxy answers a plain GET / with 400: a wrong status.
      createPool({
        name: 'web-bad',
        kind: 'app',
        image: 'switchyard/exit-node:dev',
        ports: [{ name: 'proxy', containerPort: 8888 }],
        nodes: { min: 1, max: 1 },
        healthCheck: { type: 'http', path: '/', ...fast },
      }),
      createPool({ name: 'plain', kind: 'app', image: 'switchyard/exit-node:dev', ports: [{ name: 'control', containerPort: 8000 }], nodes: { min: 1, max: 1 } }),
    ]);
    Object.assign(pools, { exit, good, bad, plain });
  }, 180_000);

  afterAll(async () => {
    await sys?.close();
    await target?.close();
    redis?.disconnect();
  });

  it('checks through the proxy, by http and by the default tcp check; a wrong status is unhealthy', async () => {
    const exitNode = pools['exit']!.nodeIds[0]!;
    const healthy = await waitForStatus(exitNode, 'healthy', 15_000);
    // The pass ratio includes checks made before the node listened, and latency lowers it on
    // a loaded machine: what a healthy node's score must be is only that it counts its passes.
    expect(healthy.score).toBeGreaterThan(0);
    expect(healthy.score).toBeLessThanOrEqual(100);
    expect(healthy.latencyMs).toBeGreaterThan(0);
    expect(healthy.lastCheckAt).not.toBeNull();

    await waitForStatus(pools['good']!.nodeIds[0]!, 'healthy', 15_000);
    // While the container starts, docker-proxy accepts and hangs up ("closed before a status
    // line"); then the proxy answers its 400.
    const bad = await waitForStatus(pools['bad']!.nodeIds[0]!, 'unhealthy', 15_000, 'http: status 400');
    expect(bad.score).toBe(0);
    // Default for an app pool: tcp every 2 s, rise 2.
    await waitForStatus(pools['plain']!.nodeIds[0]!, 'healthy', 15_000);

    const changes = watch.seen.filter((m) => m.subject === 'health.evt.changed' && m.data.nodeId === exitNode);
    expect(changes[0]!.data, JSON.stringify(changes.map((c) => c.data))).toMatchObject({ status: 'healthy', poolId: pools['exit']!.poolId, reason: '2 checks passed' });

    // The same figures, written to Redis within its one-second flush. The node became healthy
    // long before: the score the flush writes is read once it passes what the checks give by now.
    const hash = await eventually(
      () => redis.hgetall(`health:${exitNode}`),
      (h) => h['status'] === 'healthy' && Number(h['score']) > 50,
      2_500,
      'the health in Redis',
      { returnLast: true },
    );
    expect(hash).toMatchObject({ status: 'healthy', pool: pools['exit']!.poolId });
    expect(Number(hash['score'])).toBeGreaterThan(50);
    expect(hash['lastCheckAt']).toMatch(/^\d{4}-\d\d-\d\dT/);
  }, 60_000);

  it('answers health.req.status by tenant and by ids, leaving out ids it does not know', async () => {
    const all = await natsRequest<{ nodes: Health[] }>(nc, 'health.req.status', {});
    const ids = Object.values(pools).flatMap((p) => p.nodeIds);
    expect(all.nodes.map((n) => n.nodeId).sort()).toEqual([...ids].sort());
    const tenantId = all.nodes[0]!.tenantId;
    expect((await natsRequest<{ nodes: Health[] }>(nc, 'health.req.status', { tenantId })).nodes).toHaveLength(ids.length);
    expect((await natsRequest<{ nodes: Health[] }>(nc, 'health.req.status', { tenantId: '00000000-0000-4000-8000-000000000001' })).nodes).toEqual([]);
    expect(await health(['00000000-0000-4000-8000-000000000002', ids[0]!])).toMatchObject([{ nodeId: ids[0] }]);
  });

  it('measures download, upload and latency through a host-network exit node', async () => {
    const nodeId = pools['exit']!.nodeIds[0]!;
    const tenantId = (await health([nodeId]))[0]!.tenantId;
    const before = target.uploaded();
    const reply = await natsRequest<{ result: any; error?: string }>(nc, 'health.req.speedtest', { tenantId, nodeId }, 15_000);
    expect(reply.error).toBeUndefined();
    expect(reply.result).toMatchObject({ tenantId, nodeId });
    expect(reply.result.downloadMbps).toBeGreaterThan(1);
    expect(reply.result.uploadMbps).toBeGreaterThan(1);
    expect(reply.result.latencyMs).toBeGreaterThan(0);
    expect(target.uploaded() - before).toBe(4_000_000);
    const event = await watch.next((m) => m.subject === 'health.evt.speedtest' && m.data.nodeId === nodeId, 5_000);
    expect(event.data).toEqual(reply.result);

    // Bad cases answer with a reason, not a result.
    const unreachable = await natsRequest<{ result: null; error: string }>(nc, 'health.req.speedtest', { tenantId, nodeId, target: 'http://127.0.0.1:1' }, 15_000);
    expect(unreachable).toEqual({ result: null, error: expect.stringContaining('502') });
    const unknown = await natsRequest<{ result: null; error: string }>(nc, 'health.req.speedtest', { tenantId, nodeId: '00000000-0000-4000-8000-000000000003' });
    expect(unknown).toEqual({ result: null, error: 'unknown node 00000000-0000-4000-8000-000000000003' });
    const appNode = pools['good']!.nodeIds[0]!;
    const noProxy = await natsRequest<{ result: null; error: string }>(nc, 'health.req.speedtest', { tenantId, nodeId: appNode });
    expect(noProxy.error).toMatch(/no proxy port/);
  }, 60_000);

  it('a malformed request gets a 400 and is dead-lettered', async () => {
    const dead = watchSubjects(nc, ['dlq.health.req.status']);
    await expect(natsRequest(nc, 'health.req.status', { nodeIds: ['not-a-uuid'] })).rejects.toThrow(/health\.req\.status: 400 .*nodeIds/);
    await dead.next(() => true, 5_000);
    // Still serving.
    expect(Array.isArray((await natsRequest<{ nodes: Health[] }>(nc, 'health.req.status', {})).nodes)).toBe(true);
  });

  it('a killed node is unhealthy within 1 s and healthy again after it is restarted and passes rise checks', async () => {
    const nodeId = pools['exit']!.nodeIds[0]!;
    await waitForStatus(nodeId, 'healthy', 15_000);
    const [container] = await docker.listContainers({ filters: { label: [`io.switchyard.node=${nodeId}`] } });
    expect(container).toBeDefined();
    const killedAt = Date.now();
    await docker.getContainer(container!.Id).kill();

    const down = await watch.next((m) => m.subject === 'health.evt.changed' && m.data.nodeId === nodeId && m.data.status === 'unhealthy', 5_000);
    expect(down.at - killedAt).toBeLessThan(1_000);
    // Whichever comes first: the manager's died event, or `fall` failed checks.
    expect(down.data.reason).toMatch(/container died \(exit code 137\)|proxy: ECONNREFUSED/);

    // Healthy again only after the manager restarted it (a check passing before the died
    // event arrives is overruled by it) and `rise` checks passed.
    const restarted = await watch.next((m) => m.subject === 'node.evt.started' && m.data.nodeId === nodeId && m.at > killedAt, 30_000);
    const up = await watch.next((m) => m.subject === 'health.evt.changed' && m.data.nodeId === nodeId && m.data.status === 'healthy' && m.at >= restarted.at, 15_000);
    expect(up.data.reason).toBe('2 checks passed');
    const after = (await health([nodeId]))[0]!;
    expect(after.status).toBe('healthy');
    // The death is remembered in the score for a minute.
    expect(after.score).toBeLessThanOrEqual(90);
  }, 60_000);
});
