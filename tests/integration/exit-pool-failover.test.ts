import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  eventually,
  docker,
  startTestSystem,
  freePort,
  startLoopbackTarget,
  proxiedGet,
  watchSubjects,
  natsRequest,
  type TestSystem,
  type LoopbackTarget,
  type SubjectWatch,
} from '@switchyard/testkit';

// The whole path at once — gateway, exit-node-manager, health-monitor, load-balancer, real
// containers — for the two promises of failover: a node killed under load costs no client
// request, and restarting the control plane costs no node and no routing.
describe('an exit pool under failure', () => {
  let sys: TestSystem;
  let target: LoopbackTarget;
  let nc: NatsConnection;
  let watch: SubjectWatch;
  let proxyPort: number;
  let poolId: string;
  let nodeIds: string[];
  const lbEnv = () => ({ LB_LISTEN_HOST: '127.0.0.1', LB_PROXY_PORT: String(proxyPort), LB_WORKERS: '1' });

  beforeAll(async () => {
    target = await startLoopbackTarget();
    proxyPort = await freePort();
    sys = await startTestSystem();
    nc = await sys.natsClient();
    watch = watchSubjects(nc, ['health.evt.changed', 'node.evt.died', 'node.evt.started']);
    await sys.start('api-gateway');
    await sys.start('exit-node-manager');
    await sys.start('health-monitor', { HEALTH_PROXY_TARGET: `${target.url}/204` });
    await sys.start('load-balancer', lbEnv());

    const placed = await sys.http('POST', '/v1/orders', {
      body: {
        type: 'pool.create',
        pool: {
          name: 'jp',
          kind: 'exit',
          country: 'JP',
          network: 'host',
          nodes: { min: 3, max: 3 },
          strategy: 'round_robin',
          healthCheck: { type: 'proxy', target: `${target.url}/204`, intervalMs: 200, timeoutMs: 150, rise: 2, fall: 2, graceMs: 0 },
        },
      },
    });
    expect(placed.status).toBe(202);
    const order = await sys.waitForOrder(placed.body.id, ['fulfilled', 'failed'], { timeoutMs: 60_000 });
    expect(order.status).toBe('fulfilled');
    poolId = order.result.poolId;
    nodeIds = order.result.nodeIds;
    expect(nodeIds).toHaveLength(3);
    await waitAllHealthy(15_000);
  }, 120_000);

  afterAll(async () => {
    await sys?.close();
    await target?.close();
  });

  async function health(): Promise<Map<string, string>> {
    const reply = await natsRequest<{ nodes: Array<{ nodeId: string; status: string }> }>(nc, 'health.req.status', { nodeIds });
    return new Map(reply.nodes.map((n) => [n.nodeId, n.status]));
  }

  async function waitAllHealthy(timeoutMs: number): Promise<void> {
    let last = new Map<string, string>();
    const read = async () => [...(last = await health().catch(() => last))];
    await eventually(read, () => nodeIds.every((id) => last.get(id) === 'healthy'), timeoutMs, 'all nodes healthy', { intervalMs: 100 });
  }

  /** Requests through the load balancer, one after another, until stopped (bounded anyway). */
  function requestStream(opts: { maxRequests: number; maxMs: number }) {
    const failures: string[] = [];
    const servedBy = new Map<string, number>();
    const sentAt: number[] = [];
    let sent = 0;
    let stopped = false;
    const done = (async () => {
      const until = Date.now() + opts.maxMs;
      while (!stopped && sent < opts.maxRequests && Date.now() < until) {
        sent++;
        sentAt.push(Date.now());
        try {
          const res = await proxiedGet(proxyPort, `${target.url}/hello`);
          if (res.status !== 200 || res.body !== 'hello') failures.push(`status ${res.status}: ${res.body.slice(0, 80)}`);
          else servedBy.set(res.via, (servedBy.get(res.via) ?? 0) + 1);
        } catch (err) {
          failures.push((err as Error).message);
        }
        await sleep(10);
      }
    })();
    return {
      failures,
      servedBy,
      sent: () => sent,
      sentBetween: (from: number, to: number) => sentAt.filter((t) => t >= from && t <= to).length,
      /** Waits for the stream to reach its bounds. */
      finished: () => done,
      async stop() {
        stopped = true;
        await done;
      },
    };
  }

  it('a node killed during a stream of requests fails none of them, is out of rotation within 1 s, and comes back after rise', async () => {
    const stream = requestStream({ maxRequests: 5_000, maxMs: 60_000 });
    const outage = { from: 0, to: 0 };
    try {
      await sleep(1_000);
      const victim = nodeIds[0]!;
      const [container] = await docker.listContainers({ filters: { label: [`io.switchyard.node=${victim}`] } });
      expect(container).toBeDefined();
      const killedAt = Date.now();
      await docker.getContainer(container!.Id).kill();

      const down = await watch.next((m) => m.subject === 'health.evt.changed' && m.data.nodeId === victim && m.data.status === 'unhealthy', 5_000);
      expect(down.at - killedAt).toBeLessThan(1_000);

      // Healed by the manager (restart or replacement), then `rise` good checks.
      await watch.next((m) => m.subject === 'node.evt.started' && m.data.nodeId === victim && m.at > killedAt, 30_000);
      const up = await watch.next((m) => m.subject === 'health.evt.changed' && m.data.nodeId === victim && m.data.status === 'healthy' && m.at > killedAt, 30_000);
      expect(up.at).toBeGreaterThan(down.at);
      Object.assign(outage, { from: killedAt, to: up.at });

      const servedBeforeReturn = stream.servedBy.get(victim) ?? 0;
      await eventually(
        () => stream.servedBy.get(victim) ?? 0,
        (n) => n !== servedBeforeReturn,
        10_000,
        'the healed node serving',
        { intervalMs: 100, returnLast: true },
      );
      expect(stream.servedBy.get(victim) ?? 0).toBeGreaterThan(servedBeforeReturn);
    } finally {
      await stream.stop();
    }
    expect(stream.failures).toEqual([]);
    // None failed while the node was dead or healing: the stream really ran through it (a
    // count of the whole stream would measure the host's speed instead).
    expect(stream.sentBetween(outage.from, outage.to)).toBeGreaterThanOrEqual(5);
  }, 120_000);

  it('restarting the load balancer and killing the manager lose no node and no routing', async () => {
    await waitAllHealthy(15_000);
    const containersBefore = await docker.listContainers({ filters: { label: [`io.switchyard.pool=${poolId}`] } });
    expect(containersBefore).toHaveLength(3);

    // The manager crashes: the data plane does not notice, and its restart changes nothing.
    const enm = sys.processes('exit-node-manager')[0]!;
    await enm.stop('SIGKILL');
    const duringOutage = requestStream({ maxRequests: 200, maxMs: 5_000 });
    await sleep(2_000);
    await duringOutage.stop();
    expect(duringOutage.failures).toEqual([]);
    expect(duringOutage.servedBy.size).toBe(3);
    await sys.start('exit-node-manager');
    await sleep(2_000);
    const containersAfter = await docker.listContainers({ filters: { label: [`io.switchyard.pool=${poolId}`] } });
    expect(containersAfter.map((c) => c.Id).sort()).toEqual(containersBefore.map((c) => c.Id).sort());
    const listed = await sys.http('GET', `/v1/nodes?poolId=${poolId}`);
    expect(listed.status).toBe(200);
    expect(listed.body.nodes.map((n: { id: string }) => n.id).sort()).toEqual([...nodeIds].sort());
    expect(listed.body.nodes.every((n: { status: string }) => n.status === 'running')).toBe(true);

    // The load balancer restarts with an empty table and rebuilds it from state: the first
    // requests after it is ready go to all three nodes again.
    const lb = sys.processes('load-balancer')[0]!;
    await lb.stop('SIGTERM');
    await sys.start('load-balancer', lbEnv());
    const afterRestart = requestStream({ maxRequests: 30, maxMs: 10_000 });
    await afterRestart.finished();
    expect(afterRestart.failures).toEqual([]);
    expect(afterRestart.sent()).toBe(30);
    expect([...afterRestart.servedBy.keys()].sort()).toEqual([...nodeIds].sort());
  }, 120_000);
});
