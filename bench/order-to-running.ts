/**
 * Order-to-running latency: POST /v1/orders for a one-node exit pool until the order is
 * fulfilled (container created, started, ports read, events back), next to the raw Docker
 * create+start of the same container spec measured in the same run.
 *
 *   npx tsx bench/order-to-running.ts [orders=9]
 *
 * Uses its own NATS server and database (like the integration tests) and the local Docker
 * engine; removes every container it made.
 */
import { eventually, docker, EXIT_NODE_IMAGE, poolOrder, startTestSystem } from '@switchyard/testkit';

const rounds = Math.max(3, Math.min(50, Number(process.argv[2] ?? 9)));

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const p95 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil(xs.length * 0.95) - 1)]!;
const fmt = (ms: number) => `${ms.toFixed(0).padStart(6)} ms`;

async function rawDockerRun(i: number): Promise<{ createStart: number; start: number }> {
  const t0 = performance.now();
  const c = await docker.createContainer({
    Image: EXIT_NODE_IMAGE,
    name: `sy-bench-raw-${process.pid}-${i}`,
    Labels: { 'io.switchyard.bench': 'raw' },
    Env: ['SERVER_COUNTRIES=JP'],
    ExposedPorts: { '8888/tcp': {}, '8000/tcp': {} },
    HostConfig: { Init: true, PortBindings: { '8888/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }], '8000/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] } },
  });
  const t1 = performance.now();
  await c.start();
  await eventually(async () => (await c.inspect()).State.Running, Boolean, 1_000, 'the container running', { intervalMs: 5, returnLast: true });
  const t2 = performance.now();
  await c.remove({ force: true });
  return { createStart: t2 - t0, start: t2 - t1 };
}

async function main() {
  const sys = await startTestSystem();
  try {
    await sys.start('api-gateway');
    await sys.start('exit-node-manager');

    const orderMs: number[] = [];
    for (let i = 0; i <= rounds; i++) {
      const t0 = performance.now();
      const placed = await sys.http('POST', '/v1/orders', { body: poolOrder(`bench-${i}`, 'JP') });
      if (placed.status !== 202) throw new Error(`order refused: ${JSON.stringify(placed.body)}`);
      const read = async () => {
        const o = await sys.http('GET', `/v1/orders/${placed.body.id}`);
        if (o.body.status === 'failed') throw new Error(`order failed: ${o.body.reason}`);
        return o.body.status as string;
      };
      const status = await eventually(read, (s) => s === 'fulfilled', 30_000, 'the order fulfilled', { intervalMs: 10, returnLast: true });
      if (status !== 'fulfilled') throw new Error('order did not complete within 30 s');
      if (i > 0) orderMs.push(performance.now() - t0); // the first one warms caches
    }

    const raw: Array<{ createStart: number; start: number }> = [];
    await rawDockerRun(-1);
    for (let i = 0; i < rounds; i++) raw.push(await rawDockerRun(i));
    const createStart = raw.map((r) => r.createStart);
    const start = raw.map((r) => r.start);

    console.log(`order-to-running, ${rounds} orders of a one-node exit pool (${EXIT_NODE_IMAGE})`);
    console.log(`                                   median        p95`);
    console.log(`  order → fulfilled (API poll)  ${fmt(median(orderMs))}  ${fmt(p95(orderMs))}`);
    console.log(`  raw docker create+start       ${fmt(median(createStart))}  ${fmt(p95(createStart))}`);
    console.log(`  raw docker start              ${fmt(median(start))}  ${fmt(p95(start))}`);
    console.log(`  ratio order / raw create+start: ${(median(orderMs) / median(createStart)).toFixed(2)}x`);
    console.log(`  overhead over raw create+start: ${(median(orderMs) - median(createStart)).toFixed(0)} ms (median)`);
  } finally {
    await sys.close();
    const leftovers = await docker.listContainers({ all: true, filters: { label: ['io.switchyard.bench=raw'] } });
    for (const c of leftovers)
      await docker
        .getContainer(c.Id)
        .remove({ force: true })
        .catch(() => undefined);
  }
}

await main();
