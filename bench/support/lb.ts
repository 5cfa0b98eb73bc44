import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
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
  const lb = await startReady('load-balancer', {
    NATS_URL: nats.url,
    ...nats.identityEnv('load-balancer'),
    REDIS_URL: process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379',
    LB_PROXY_PORT: String(await freePort()),
    ...env,
  }).catch(async (err: unknown) => {
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
