import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import type { NatsConnection } from '@nats-io/transport-node';
import { startRoutingPeer, startNatsServer, freePort, startReady, type RoutingPeer, type NatsServer, type ServiceProcess } from '@switchyard/testkit';
import { aPoolView, aNodeServing } from '@switchyard/testkit/fixtures';

/** A loopback server that echoes every byte (latency) or swallows it and says "ok" at the end (bulk). */
export async function startBackend(kind: 'echo' | 'sink'): Promise<{ port: number; server: Server }> {
  const server = createServer({ allowHalfOpen: true, noDelay: true }, (s) => {
    s.on('error', () => undefined);
    if (kind === 'echo') s.pipe(s);
    else {
      s.on('data', () => undefined);
      s.on('end', () => s.end('ok'));
    }
  });
  server.maxConnections = 1_000_000;
  server.listen({ port: 0, host: '127.0.0.1', backlog: 8192 });
  await once(server, 'listening');
  return { port: (server.address() as { port: number }).port, server };
}

export interface BenchLb {
  readonly nats: NatsServer;
  readonly nc: NatsConnection;
  readonly peer: RoutingPeer;
  readonly lb: ServiceProcess;
  /** publicPort of each app pool, in the order the backends were given. */
  readonly ports: number[];
  stop(): Promise<void>;
}

export interface BenchLbOptions {
  /** The tenant of each backend's pool; one tenant for all unless given. */
  readonly tenants?: readonly string[];
  /** The tags of each backend's pool (what an ACL policy names); none unless given. */
  readonly tags?: readonly (readonly string[])[];
  /** Changes the peer's state (policies, say) before the load balancer first reads it. */
  readonly prepare?: (peer: RoutingPeer) => void;
  /** Options for node itself, which the workers inherit (`--cpu-prof`). */
  readonly nodeArgs?: readonly string[];
}

/**
 * The real load balancer (services/load-balancer/dist/main.js) on a private NATS server, with
 * the bench answering pool.req.snapshot, health.req.status and acl.req.snapshot: one app pool
 * per backend port.
 */
export async function startBenchLb(backendPorts: number[], env: Record<string, string> = {}, opts: BenchLbOptions = {}): Promise<BenchLb> {
  const nats = await startNatsServer();
  const nc = await nats.connect();
  const peer = startRoutingPeer(nc);
  const tenantId = randomUUID();
  const ports: number[] = [];
  for (const [i, backend] of backendPorts.entries()) {
    const publicPort = await freePort();
    const tags = opts.tags?.[i];
    const pool = aPoolView(
      { name: `bench-${i}`, kind: 'app', image: 'none', publicPort, ports: [{ name: 'tcp', containerPort: backend }], ...(tags ? { tags: [...tags] } : {}) },
      { tenantId: opts.tenants?.[i] ?? tenantId },
    );
    peer.state.pools.push(pool);
    peer.state.nodes.push(aNodeServing(pool, backend));
    ports.push(publicPort);
  }
  opts.prepare?.(peer);
  const lb = await startReady(
    'load-balancer',
    {
      NATS_URL: nats.url,
      ...nats.identityEnv('load-balancer'),
      REDIS_URL: process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379',
      LB_PROXY_PORT: String(await freePort()),
      ...env,
    },
    30_000,
    opts.nodeArgs,
  ).catch(async (err: unknown) => {
    await nc.close();
    await nats.stop();
    throw err;
  });
  return {
    nats,
    nc,
    peer,
    lb,
    ports,
    async stop() {
      await lb.stop('SIGTERM');
      await nc.close();
      await nats.stop();
    },
  };
}

export const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(sorted.length * p) - 1))]!;

/** The load balancer's primary and its workers (the children of the primary). */
export function lbPids(primary: number): number[] {
  const pids = [primary];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === primary) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/**
 * CPU time the processes have run, in ns, summed over their threads (the scheduler's own
 * account in /proc/<pid>/task/<tid>/schedstat: nanoseconds, where utime counts 10 ms ticks).
 */
export function cpuNs(pids: readonly number[]): number {
  let ns = 0;
  for (const pid of pids) {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      } catch {
        // the thread ended meanwhile
      }
    }
  }
  return ns;
}
