/**
 * Failover: a three-node exit pool (host network, proxy health checks every 200 ms, rise 2,
 * fall 2) behind the load balancer takes a steady stream of proxied requests while one node
 * is `docker kill`ed, round after round. For each kill it prints the time from the kill to
 *   - the first request started after the kill that completed (through another node),
 *   - the node marked down (health.evt.changed unhealthy),
 *   - the node running again (node.evt.started) and back in rotation (healthy after rise),
 * and the client requests that failed. The source design's failover target is 30 s.
 *
 *   npx tsx bench/failover.ts [kills=5]
 *
 * Uses its own NATS server and database and the local Docker engine, like the integration
 * tests; removes every container it made.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { eventually, docker, startTestSystem, freePort, natsRequest, proxiedGet, startLoopbackTarget, watchSubjects } from '@switchyard/testkit';

const kills = Math.max(1, Math.min(20, Number(process.argv[2] ?? 5)));
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const max = (xs: number[]) => Math.max(...xs);

const target = await startLoopbackTarget();
const proxyPort = await freePort();
const sys = await startTestSystem();
try {
  const nc = await sys.natsClient();
  const watch = watchSubjects(nc, ['health.evt.changed', 'node.evt.started']);
  await sys.start('api-gateway');
  await sys.start('exit-node-manager');
  await sys.start('health-monitor', { HEALTH_PROXY_TARGET: `${target.url}/204` });
  await sys.start('load-balancer', { LB_LISTEN_HOST: '127.0.0.1', LB_PROXY_PORT: String(proxyPort), LB_WORKERS: '1' });
  const placed = await sys.http('POST', '/v1/orders', {
    body: {
      type: 'pool.create',
      pool: {
        name: 'bench',
        kind: 'exit',
        country: 'JP',
        network: 'host',
        nodes: { min: 3, max: 3 },
        strategy: 'round_robin',
        healthCheck: { type: 'proxy', target: `${target.url}/204`, intervalMs: 200, timeoutMs: 150, rise: 2, fall: 2, graceMs: 0 },
      },
    },
  });
  const order = await sys.waitForOrder(placed.body.id, ['fulfilled', 'failed'], { timeoutMs: 60_000 });
  if (order.status !== 'fulfilled') throw new Error(`pool order ${order.status}: ${order.reason}`);
  const nodeIds: string[] = order.result.nodeIds;

  const allHealthy = async (timeoutMs: number) => {
    const healthy = () => natsRequest<{ nodes: Array<{ nodeId: string; status: string }> }>(nc, 'health.req.status', { nodeIds }).catch(() => ({ nodes: [] }));
    await eventually(healthy, (reply) => reply.nodes.filter((n) => n.status === 'healthy').length === nodeIds.length, timeoutMs, 'the pool healthy', { intervalMs: 50 });
  };
  await allHealthy(20_000);

  // Four request loops, each one request at a time on a fresh connection.
  const completions: number[] = [];
  const failures: Array<{ at: number; error: string }> = [];
  let running = true;
  const loops = Array.from({ length: 4 }, async () => {
    const until = Date.now() + 10 * 60_000;
    while (running && Date.now() < until) {
      const started = Date.now();
      try {
        const res = await proxiedGet(proxyPort, `${target.url}/hello`);
        if (res.status === 200) completions.push(started);
        else failures.push({ at: started, error: `status ${res.status}` });
      } catch (err) {
        failures.push({ at: started, error: (err as Error).message });
      }
      await sleep(2);
    }
  });

  const killTimes: number[] = [];
  const rows: Array<{ firstAnswer: number; down: number; restarted: number; back: number; failed: number }> = [];
  await sleep(1_000);
  for (let round = 0; round < kills; round++) {
    const victim = nodeIds[round % nodeIds.length]!;
    const [container] = await docker.listContainers({ filters: { label: [`io.switchyard.node=${victim}`] } });
    if (!container) throw new Error(`no running container for node ${victim}`);
    const killedAt = Date.now();
    killTimes.push(killedAt);
    await docker.getContainer(container.Id).kill();
    const down = await watch.next((m) => m.subject === 'health.evt.changed' && m.data.nodeId === victim && m.data.status === 'unhealthy' && m.at >= killedAt, 10_000);
    const restarted = await watch.next((m) => m.subject === 'node.evt.started' && m.data.nodeId === victim && m.at >= killedAt, 30_000);
    const back = await watch.next((m) => m.subject === 'health.evt.changed' && m.data.nodeId === victim && m.data.status === 'healthy' && m.at >= killedAt, 30_000);
    const firstAnswer = completions.find((t) => t >= killedAt);
    rows.push({
      firstAnswer: firstAnswer === undefined ? NaN : firstAnswer - killedAt,
      down: down.at - killedAt,
      restarted: restarted.at - killedAt,
      back: back.at - killedAt,
      failed: 0,
    });
    await allHealthy(20_000);
    await sleep(500);
  }
  running = false;
  await Promise.all(loops);
  // A failure is recorded when it ends (up to the 5 s client timeout): attribute each by when
  // its request started, once all have ended.
  rows.forEach((row, i) => {
    const from = killTimes[i]!;
    const to = killTimes[i + 1] ?? Infinity;
    row.failed = failures.filter((f) => f.at >= from && f.at < to).length;
  });

  const col = (k: keyof (typeof rows)[number]) => rows.map((r) => r[k]);
  console.log(`failover over ${kills} kills of one node of three (${completions.length} requests answered, ${failures.length} failed in all)`);
  console.log('                                         median      max');
  for (const [label, key] of [
    ['kill → first request answered after it', 'firstAnswer'],
    ['kill → node marked down', 'down'],
    ['kill → node running again', 'restarted'],
    ['kill → node back in rotation (rise)', 'back'],
  ] as const) {
    console.log(`${label.padEnd(40)} ${median(col(key)).toFixed(0).padStart(6)} ms ${max(col(key)).toFixed(0).padStart(6)} ms`);
  }
  console.log(`failed client requests per kill: ${col('failed').join(', ')}`);
  for (const f of failures.slice(0, 5)) {
    const kill = killTimes.filter((t) => t <= f.at).at(-1);
    console.log(`  failed: a request started ${kill === undefined ? 'before any kill' : `${f.at - kill} ms after kill ${killTimes.indexOf(kill) + 1}`}: ${f.error}`);
  }
  console.log(`against the source design's 30 s failover: ${(30_000 / max(col('down'))).toFixed(0)}× faster to take a dead node out`);
} finally {
  await sys.close();
  await target.close();
}
