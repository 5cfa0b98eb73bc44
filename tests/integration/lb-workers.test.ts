import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import type { NodeView, PoolView } from '@switchyard/contracts';
import {
  createTestRedisUsers,
  type TestRedisUsers,
  eventually,
  natsRequest,
  watchSubjects,
  askTcp,
  rawExchange,
  startRoutingPeer,
  startTaggedBackends,
  startNatsServer,
  freePort,
  startReady,
  type RoutingPeer,
  type TaggedBackends,
  type NatsServer,
  type ServiceProcess,
} from '@switchyard/testkit';
import { aNodeServing, aPoolView } from '@switchyard/testkit/fixtures';

// The load balancer as several worker processes, with its routing facts supplied by the test:
// the test answers pool.req.snapshot and health.req.status and publishes the node and health
// events exit-node-manager and health-monitor would publish, as a NATS peer. No Docker: the
// nodes are app-pool TCP backends on loopback that tag their answers with their name.
describe('load balancer workers and the routing table', () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let peer: RoutingPeer;
  let backends: TaggedBackends;
  let lb: ServiceProcess;
  let pool: PoolView;
  let nodes: NodeView[];
  let publicPort: number;
  let proxyPort: number;
  let redis: Redis;
  let redisUsers: TestRedisUsers;
  const tenantId = randomUUID();
  const names = ['a', 'b', 'c'];

  const env = async (extra: Record<string, string> = {}) => ({
    NATS_URL: nats.url,
    ...nats.identityEnv('load-balancer'),
    // Its own Redis user (lb:* only), as in a deployment.
    REDIS_URL: redisUsers.urlFor('load-balancer'),
    LB_PROXY_PORT: String(await freePort()),
    LB_REBUILD_INTERVAL_MS: '60000',
    SHUTDOWN_TIMEOUT_MS: '5000',
    ...extra,
  });

  /** Which backend answered each of `n` fresh connections through the pool's port. */
  async function spread(n: number, port = publicPort): Promise<Record<string, number>> {
    const counts: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const { answer } = await askTcp(port);
      const name = answer.split(':')[0]!;
      counts[name] = (counts[name] ?? 0) + 1;
    }
    return counts;
  }

  async function publish(subject: string, node: NodeView, extra: Record<string, unknown>): Promise<void> {
    nc.publish(subject, JSON.stringify({ tenantId: node.tenantId, poolId: node.poolId, nodeId: node.nodeId, at: new Date().toISOString(), ...extra }));
    await nc.flush();
    await sleep(200);
  }

  beforeAll(async () => {
    redisUsers = await createTestRedisUsers(`sy_lbw_${randomUUID().slice(0, 8)}`);
    nats = await startNatsServer();
    nc = await nats.connect();
    peer = startRoutingPeer(nc);
    backends = await startTaggedBackends(names);
    publicPort = await freePort();
    pool = aPoolView({ name: 'echo', kind: 'app', image: 'none', publicPort, strategy: 'round_robin', ports: [{ name: 'tcp', containerPort: 1 }] }, { tenantId });
    nodes = backends.ports.map((port) => aNodeServing(pool, port));
    peer.state.pools.push(pool);
    peer.state.nodes.push(...nodes);
    redis = new Redis(process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379');
    proxyPort = await freePort();
    // An app pool that asks for the proxy port is in the snapshot the workers start from.
    const squatter = aPoolView({ name: 'squatter', kind: 'app', image: 'none', publicPort: proxyPort, ports: [{ name: 'tcp', containerPort: 1 }] }, { tenantId });
    peer.state.pools.push(squatter);
    peer.state.nodes.push(aNodeServing(squatter, backends.ports[0]!));
    lb = await startReady('load-balancer', await env({ LB_WORKERS: '3', LB_PROXY_PORT: String(proxyPort) }));
  });

  afterAll(async () => {
    await lb?.stop('SIGTERM');
    peer?.stop();
    await nc?.close();
    await backends?.close();
    redis?.disconnect();
    await redisUsers?.delete();
    await nats?.stop();
  });

  it('three workers log "ready" once and each serves the pool rebuilt from the snapshot', async () => {
    expect(lb.output().match(/"msg":"ready"/g)).toHaveLength(1);
    // Each worker logs through its own pipe, so its line may land after the primary's "ready".
    const listening = () => lb.output().match(/"msg":"listening"/g)?.length ?? 0;
    await eventually(listening, (n) => n >= 3, 5_000, 'three workers listening', { intervalMs: 100, returnLast: true });
    expect(listening()).toBe(3);
    const counts = await spread(30);
    expect(Object.keys(counts).sort()).toEqual(names);
  });

  it('a tenant strategy set through one worker is what every worker answers', async () => {
    const set = await natsRequest<{ strategy: string }>(nc, 'lb.req.strategy', { tenantId, strategy: 'health_score' });
    expect(set.strategy).toBe('health_score');
    // Every worker hears of the change; any of them may answer a request.
    const strategies = () => Promise.all(Array.from({ length: 12 }, async () => (await natsRequest<{ strategy: string }>(nc, 'lb.req.strategy', { tenantId })).strategy));
    await eventually(strategies, (all) => all.every((s) => s === 'health_score'), 5_000, 'every worker on health_score', { intervalMs: 100, returnLast: true });
    for (let i = 0; i < 12; i++) expect((await natsRequest<{ strategy: string }>(nc, 'lb.req.strategy', { tenantId })).strategy).toBe('health_score');
    const other = await natsRequest<{ strategy: string }>(nc, 'lb.req.strategy', { tenantId: randomUUID() });
    expect(other.strategy).toBe('round_robin');
  });

  it('healthy nodes take the traffic before unknown ones; a died node is out at once; unhealthy never', async () => {
    await publish('health.evt.changed', nodes[0]!, { status: 'healthy', score: 90, reason: 'test' });
    expect(await spread(12)).toEqual({ a: 12 });
    await publish('health.evt.changed', nodes[1]!, { status: 'healthy', score: 90, reason: 'test' });
    expect(Object.keys(await spread(12)).sort()).toEqual(['a', 'b']);
    await publish('node.evt.died', nodes[0]!, { containerId: 'x', exitCode: 137, oomKilled: false });
    expect(await spread(12)).toEqual({ b: 12 });
    await publish('health.evt.changed', nodes[1]!, { status: 'unhealthy', score: 0, reason: 'test' });
    // No healthy node left: the unknown one (c) serves; a (died) and b (unhealthy) never.
    expect(await spread(12)).toEqual({ c: 12 });
  });

  it('a node that refuses connections is retried on another, and reported with lb.evt.connfail', async () => {
    const port = await freePort();
    const retryPool = aPoolView(
      { name: 'retry', kind: 'app', image: 'none', publicPort: await freePort(), strategy: 'round_robin', ports: [{ name: 'tcp', containerPort: 1 }] },
      { tenantId },
    );
    const dead = aNodeServing(retryPool, port);
    const alive = aNodeServing(retryPool, backends.ports[2]!);
    const watch = watchSubjects(nc, ['lb.evt.connfail']);
    nc.publish('pool.evt.changed', JSON.stringify({ tenantId, poolId: retryPool.poolId, name: retryPool.name, spec: retryPool.spec, at: new Date().toISOString() }));
    for (const n of [dead, alive]) {
      await publish('node.evt.started', n, { containerId: 'x', ports: n.ports, startMs: 1 });
    }
    const tries = () => spread(6, retryPool.spec.publicPort!).catch((): Record<string, number> => ({}));
    const counts = await eventually(tries, (c) => Object.keys(c).length > 0, 10_000, 'the retry pool answering', { intervalMs: 100, returnLast: true });
    expect(counts).toEqual({ c: 6 });
    const failed = await watch.next((m) => m.data.nodeId === dead.nodeId, 3000);
    expect(failed.data.error).toMatch(/ECONNREFUSED/);
  });

  it('an app pool never takes the proxy port: every worker refuses it and the port stays a proxy', async () => {
    expect(lb.output().match(/app pool publicPort is a proxy port; not listening/g)).toHaveLength(3);
    for (let i = 0; i < 12; i++) {
      // An app backend would answer with its tag; the proxy answers a relative URL with 400.
      const { bytes } = await rawExchange(proxyPort, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', 3000);
      expect(bytes.toString('latin1')).toMatch(/^HTTP\/1\.1 400 /);
    }
  });

  it("node.evt.removed deletes the node's traffic counters", async () => {
    await spread(6);
    const key = `lb:traffic:${nodes[2]!.nodeId}`;
    await eventually(
      () => redis.exists(key),
      (n) => n === 1,
      5_000,
      'counters in Redis',
      { intervalMs: 100, returnLast: true },
    );
    expect(await redis.hget(key, 'total')).not.toBeNull();
    await publish('node.evt.removed', nodes[2]!, { reason: 'test' });
    await eventually(
      () => redis.exists(key),
      (n) => n === 0,
      5_000,
      'counters deleted',
      { intervalMs: 100, returnLast: true },
    );
    expect(await redis.exists(key)).toBe(0);
    // The workers' next flushes do not bring it back.
    await sleep(1500);
    expect(await redis.exists(key)).toBe(0);
  });

  it('SIGTERM stops every worker and exits 0 within the shutdown timeout', async () => {
    const t0 = Date.now();
    const { code } = await lb.stop('SIGTERM');
    expect(code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('per-node hard limits refuse a connection no node may take', async () => {
    // Only the load balancer of this test may listen on the pool's port: the shared one is ended
    // (the test above may have done it already).
    await lb.stop('SIGTERM');
    const limitedPort = await freePort();
    const limited = aPoolView(
      {
        name: 'limited',
        kind: 'app',
        image: 'none',
        publicPort: limitedPort,
        strategy: 'least_connections',
        limits: { softConnections: 1, hardConnections: 2 },
        ports: [{ name: 'tcp', containerPort: 1 }],
      },
      { tenantId },
    );
    // A single process of its own, so a worker's share of the limits is the whole limit.
    const single = await startReady('load-balancer', await env({ LB_WORKERS: '1' }));
    const held: Array<{ socket: { destroy(): void } }> = [];
    try {
      nc.publish('pool.evt.changed', JSON.stringify({ tenantId, poolId: limited.poolId, name: limited.name, spec: limited.spec, at: new Date().toISOString() }));
      for (const port of backends.ports.slice(0, 2))
        await publish('node.evt.started', aNodeServing(limited, port), {
          containerId: 'x',
          ports: [{ name: 'tcp', containerPort: port, hostIp: '127.0.0.1', hostPort: port }],
          startMs: 1,
        });
      // Soft limit 1: one each first; then up to the hard limit of 2 each; the fifth is refused.
      const answers: string[] = [];
      for (let i = 0; i < 4; i++) {
        const r = await askTcp(limitedPort, 5000, true);
        held.push(r);
        answers.push(r.answer.split(':')[0]!);
      }
      expect(answers.slice(0, 2).sort()).toEqual(['a', 'b']);
      expect(answers.sort()).toEqual(['a', 'a', 'b', 'b']);
      // Closed at once, with a reset when the client's bytes were still unread.
      await expect(askTcp(limitedPort, 3000)).rejects.toThrow(/closed without an answer|ECONNRESET/);
    } finally {
      for (const h of held) h.socket.destroy();
      expect((await single.stop('SIGTERM')).code).toBe(0);
    }
  });
});
