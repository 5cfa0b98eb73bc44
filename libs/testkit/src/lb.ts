import { once } from 'node:events';
import { connect as tcpConnect, createServer, type Server, type Socket } from 'node:net';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { AclPolicyView, NodeHealth, NodeView, PoolView } from '@switchyard/contracts';

/**
 * What a test's load balancer needs to serve its clients the way the tests expect: without
 * proxy users, and to targets on 127.0.0.1 (both refused by default). The exit nodes of a test
 * system reach 127.0.0.1 through EXIT_NODE_OUTBOUND_SUBNETS (system.ts).
 */
export const LOOPBACK_LB_ENV: Readonly<Record<string, string>> = Object.freeze({ LB_OPEN_PROXY: 'true', LB_ALLOWED_NETWORKS: '127.0.0.1/32' });

/**
 * Stands in for exit-node-manager, health-monitor and api-gateway on the request subjects the
 * load balancer rebuilds itself from (`pool.req.snapshot`, `health.req.status`,
 * `acl.req.snapshot`), as a NATS peer. Tests and benches change `state` and the next rebuild
 * sees it. `policies`: the tenants' ACL policies (none unless a test sets some), one page.
 */
export interface RoutingPeer {
  readonly state: { pools: PoolView[]; nodes: NodeView[]; health: NodeHealth[] | null; policies: AclPolicyView[] };
  stop(): void;
}

export function startRoutingPeer(nc: NatsConnection, opts: { snapshot?: boolean; health?: boolean; acl?: boolean } = {}): RoutingPeer {
  const state: RoutingPeer['state'] = { pools: [], nodes: [], health: [], policies: [] };
  const subs: Subscription[] = [];
  if (opts.acl ?? true) {
    subs.push(nc.subscribe('acl.req.snapshot', { callback: (_e, m) => void m.respond(JSON.stringify({ policies: state.policies })) }));
  }
  if (opts.snapshot ?? true) {
    subs.push(nc.subscribe('pool.req.snapshot', { callback: (_e, m) => void m.respond(JSON.stringify({ pools: state.pools, nodes: state.nodes })) }));
  }
  if (opts.health ?? true) {
    subs.push(
      nc.subscribe('health.req.status', {
        // null: behave like a health monitor that is down (no answer).
        callback: (_e, m) => {
          if (state.health) m.respond(JSON.stringify({ nodes: state.health }));
        },
      }),
    );
  }
  return { state, stop: () => subs.forEach((s) => s.unsubscribe()) };
}

/**
 * TCP servers on loopback that answer every chunk with `<name>:` + the chunk, so a client
 * sees which backend it reached; `connections` counts accepted sockets per server.
 */
export interface TaggedBackends {
  readonly ports: number[];
  readonly connections: number[];
  close(): Promise<void>;
}

export async function startTaggedBackends(names: string[]): Promise<TaggedBackends> {
  const servers: Server[] = [];
  const sockets = new Set<Socket>();
  const connections = names.map(() => 0);
  const ports: number[] = [];
  for (const [i, name] of names.entries()) {
    const server = createServer((s) => {
      connections[i]!++;
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
      s.on('data', (d) => s.write(`${name}:${d.toString()}`));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    servers.push(server);
    ports.push((server.address() as { port: number }).port);
  }
  return {
    ports,
    connections,
    async close() {
      for (const s of sockets) s.destroy();
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    },
  };
}

/** Opens a TCP connection, sends `hello`, and resolves with the first answer (bounded). */
export function askTcp(port: number, timeoutMs = 5000, keep = false): Promise<{ answer: string; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const s = tcpConnect(port, '127.0.0.1');
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no answer on port ${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    s.once('connect', () => s.write('hello'));
    s.once('data', (d) => {
      clearTimeout(timer);
      if (!keep) s.end();
      resolve({ answer: d.toString(), socket: s });
    });
    s.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    s.once('close', () => {
      clearTimeout(timer);
      reject(new Error(`port ${port} closed without an answer`));
    });
  });
}

/**
 * Sends raw bytes and collects everything until the peer closes or `timeoutMs` passes.
 * `localAddress`: the loopback address the client connects from (an ACL policy's source).
 */
export function rawExchange(port: number, data: Buffer | string, timeoutMs = 5000, localAddress?: string): Promise<{ bytes: Buffer; closed: boolean; ms: number }> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const chunks: Buffer[] = [];
    const s = tcpConnect({ port, host: '127.0.0.1', ...(localAddress ? { localAddress } : {}) });
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ bytes: Buffer.concat(chunks), closed: false, ms: performance.now() - t0 });
    }, timeoutMs);
    s.on('error', () => undefined);
    s.once('connect', () => s.write(data));
    s.on('data', (d) => chunks.push(d));
    s.once('close', () => {
      clearTimeout(timer);
      resolve({ bytes: Buffer.concat(chunks), closed: true, ms: performance.now() - t0 });
    });
  });
}
