import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { dial, release, splice } from '@switchyard/tcp';
import type { Target } from './probe.js';

// The node host's end of a path: a listener that splices each connection to one of its targets,
// the node's published port, or a pool's nodes in turn (one that refuses is passed over for the
// next). Targets change under it (a node moved, a pool's node came or went) without touching
// the connections it carries.

export interface SpliceServerOptions {
  host: string;
  /** 0 for a free port. */
  port: number;
  targets: readonly Target[];
  /** A dial slower than this fails over to the next target; default 5 s. */
  dialTimeoutMs?: number;
  /** See libs/tcp's splice; default 60 s. */
  halfCloseMs?: number;
  /** Only connections from this address are carried (a link's one peer); others are cut at once. */
  allowFrom?: string;
}

export interface SpliceServer {
  readonly host: string;
  readonly port: number;
  targets(): readonly Target[];
  /** New connections go to these from now on; open ones stay where they are. */
  setTargets(targets: readonly Target[]): void;
  /** Open connections it carries now. */
  connections(): number;
  /** Stops listening and drops what it carries. */
  close(): Promise<void>;
}

const DIAL_TIMEOUT_MS = 5_000;
const HALF_CLOSE_MS = 60_000;

export async function startSpliceServer(o: SpliceServerOptions): Promise<SpliceServer> {
  let targets = [...o.targets];
  let next = 0;
  let closing = false;
  const clients = new Set<Socket>();
  const upstreams = new Set<Socket>();
  const dialTimeoutMs = o.dialTimeoutMs ?? DIAL_TIMEOUT_MS;
  const halfCloseMs = o.halfCloseMs ?? HALF_CLOSE_MS;

  const carry = async (client: Socket) => {
    client.on('error', () => undefined);
    if (o.allowFrom !== undefined && client.remoteAddress !== o.allowFrom) {
      client.destroy();
      return;
    }
    clients.add(client);
    client.once('close', () => clients.delete(client));
    // Each target at most once per connection, starting with the next in turn.
    const order = targets.map((_, i) => targets[(next + i) % targets.length]!);
    next = targets.length ? (next + 1) % targets.length : 0;
    for (const target of order) {
      if (client.destroyed) return;
      try {
        const upstream = await dial({ ...target, timeoutMs: dialTimeoutMs });
        // The client left (or the server closed) while the dial was under way: nothing to carry.
        if (client.destroyed || closing) {
          upstream.destroy();
          return;
        }
        upstreams.add(upstream);
        upstream.once('close', () => upstreams.delete(upstream));
        client.resume();
        splice(client, upstream, { halfCloseMs });
        return;
      } catch {
        // passed over: the next target
      }
    }
    // No target took it: a FIN, so the client learns there is no way through.
    release(client, halfCloseMs);
  };

  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => void carry(client));
  server.listen({ host: o.host, port: o.port });
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  return {
    host: o.host,
    port,
    targets: () => targets,
    setTargets(t) {
      targets = [...t];
      next = 0;
    },
    connections: () => clients.size,
    async close() {
      closing = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of [...clients, ...upstreams]) s.destroy();
      await closed;
    },
  };
}
