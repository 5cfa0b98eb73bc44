/**
 * Health checks of 1,000 TCP targets each second: the real health-monitor process
 * (services/health-monitor/dist/main.js, build it first) against 1,000 loopback listeners in
 * a child process, with this script answering `pool.req.snapshot` in place of the
 * exit-node-manager (10 app pools of 100 running nodes — a pool holds at most 100 — each
 * checked by tcp every 1000 ms). It prints the checks per second the listeners saw and the
 * CPU the health-monitor used over the window (utime+stime from /proc/<pid>/stat), next to
 * the CPU of the same number of bare net.connect + reset in a plain loop in this process.
 *
 *   npx tsx bench/health-checks.ts [targets=1000] [seconds=15]
 *
 * Uses its own NATS server; the real Redis gets the monitor's health:<id> keys, deleted at
 * the end.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { eventually, startNatsServer, startService } from '@switchyard/testkit';

const targets = Math.max(100, Math.min(5000, Number(process.argv[2] ?? 1000)));
const seconds = Math.max(5, Math.min(120, Number(process.argv[3] ?? 15)));
const POOL_SIZE = 100;
const WARMUP_MS = 5000;
const CLK_TCK = 100;

// The listeners accept and drop; they count connections so the bench sees what was checked.
const LISTENERS = `
const net = require('node:net');
const n = Number(process.argv[1]);
let accepted = 0;
const ports = [];
let ready = 0;
for (let i = 0; i < n; i++) {
  const s = net.createServer((c) => { accepted++; c.on('error', () => {}); c.destroy(); });
  s.on('error', (e) => { console.error(e.message); process.exit(1); });
  s.listen(0, '127.0.0.1', 4096, () => { ports[i] = s.address().port; if (++ready === n) process.send({ ports }); });
}
process.on('message', () => process.send({ accepted }));
process.on('disconnect', () => process.exit(0));
`;

function cpuTicks(pid: number): number {
  // Fields after the command name (which may hold spaces): utime and stime are 14th and 15th.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

async function main(): Promise<void> {
  const listeners = spawn(process.execPath, ['-e', LISTENERS, String(targets)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const ask = <T>(): Promise<T> => new Promise((resolve) => listeners.once('message', (m) => resolve(m as T)));
  const { ports } = await ask<{ ports: number[] }>();
  const accepted = async () => {
    const reply = ask<{ accepted: number }>();
    listeners.send('count');
    return (await reply).accepted;
  };

  const nats = await startNatsServer();
  const nc = await nats.connect();
  const tenantId = randomUUID();
  const at = new Date().toISOString();
  const pools = Array.from({ length: Math.ceil(targets / POOL_SIZE) }, (_, i) => ({
    tenantId,
    poolId: randomUUID(),
    name: `bench-${i}`,
    spec: {
      name: `bench-${i}`,
      kind: 'app' as const,
      image: 'bench',
      ports: [{ name: 'tcp', containerPort: 80 }],
      nodes: { min: POOL_SIZE, max: POOL_SIZE },
      healthCheck: { type: 'tcp' as const, intervalMs: 1000, timeoutMs: 500, rise: 2, fall: 3, graceMs: 0 },
    },
  }));
  const nodes = ports.map((hostPort, i) => ({
    tenantId,
    poolId: pools[Math.floor(i / POOL_SIZE)]!.poolId,
    nodeId: randomUUID(),
    name: `bench-${i}`,
    kind: 'app' as const,
    status: 'running' as const,
    country: null,
    region: null,
    city: null,
    server: null,
    containerId: `bench${i}`,
    ports: [{ name: 'tcp', containerPort: 80, hostIp: '127.0.0.1', hostPort }],
    startedAt: at,
    stats: null,
  }));
  const snapshot = JSON.stringify({ pools, nodes });
  nc.subscribe('pool.req.snapshot', { callback: (_err, msg) => void msg.respond(snapshot) });

  const monitor = startService('health-monitor', {
    NATS_URL: nats.url,
    ...nats.identityEnv('health-monitor'),
    REDIS_URL: process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379',
    LOG_LEVEL: 'warn',
    HEALTH_RESYNC_MS: '30000',
  });
  const redis = new Redis(process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379', { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    // Ready once every node has been checked (and found healthy) at least twice.
    const healthyCount = async () => {
      const reply = await nc.request('health.req.status', JSON.stringify({ tenantId }), { timeout: 5000 }).catch(() => undefined);
      const list = reply ? (reply.json() as { nodes?: Array<{ status: string }> }).nodes : undefined;
      return list?.filter((n) => n.status === 'healthy').length ?? 0;
    };
    await sleep(500);
    const healthy = await eventually(healthyCount, (n) => n === targets, 30_000, 'every node healthy', { intervalMs: 500, returnLast: true });
    if (healthy !== targets) throw new Error(`only ${healthy} of ${targets} nodes healthy; monitor output:\n${monitor.output().slice(-2000)}`);
    await sleep(WARMUP_MS);

    const c0 = await accepted();
    const t0 = performance.now();
    const cpu0 = cpuTicks(monitor.pid);
    await sleep(seconds * 1000);
    const cpu1 = cpuTicks(monitor.pid);
    const t1 = performance.now();
    const c1 = await accepted();
    const checks = c1 - c0;
    const wall = (t1 - t0) / 1000;
    const monitorCpu = (cpu1 - cpu0) / CLK_TCK;
    await monitor.stop('SIGTERM');

    // The same number of connections, bare: connect, reset, 64 at a time, as fast as they go.
    const ref0 = process.cpuUsage();
    const r0 = performance.now();
    let started = 0;
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (started < checks) {
          const port = ports[started++ % ports.length]!;
          await new Promise<void>((resolve) => {
            const s = netConnect({ host: '127.0.0.1', port });
            s.once('connect', () => {
              s.resetAndDestroy();
              resolve();
            });
            s.once('error', () => resolve());
          });
        }
      }),
    );
    const refWall = (performance.now() - r0) / 1000;
    const refUsage = process.cpuUsage(ref0);
    const refCpu = (refUsage.user + refUsage.system) / 1e6;

    const perCheck = (monitorCpu / checks) * 1e6;
    const perBare = (refCpu / checks) * 1e6;
    console.log(`targets: ${targets} (tcp, every 1000 ms), window: ${wall.toFixed(1)} s`);
    console.log(
      `health-monitor: ${(checks / wall).toFixed(0)} checks/s, CPU ${monitorCpu.toFixed(2)} s = ${(monitorCpu / wall).toFixed(3)} of a core, ${perCheck.toFixed(1)} µs per check`,
    );
    console.log(`bare connect+reset loop: ${checks} connections in ${refWall.toFixed(2)} s, CPU ${refCpu.toFixed(2)} s, ${perBare.toFixed(1)} µs per connection`);
    console.log(`ratio (monitor CPU per check / bare CPU per connection): ${(perCheck / perBare).toFixed(2)}×`);
  } finally {
    await monitor.stop('SIGTERM');
    const keys = nodes.map((n) => `health:${n.nodeId}`);
    for (let i = 0; i < keys.length; i += 500) await redis.del(...keys.slice(i, i + 500)).catch(() => undefined);
    redis.disconnect();
    await nc.close();
    await nats.stop();
    listeners.disconnect();
  }
}

await main();
