import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import type { RoutePool } from './table.js';

const serverOptions = { allowHalfOpen: true, noDelay: true } as const;

/**
 * Listens, rejecting when the port cannot be bound. The server keeps an error listener for
 * its whole life: an 'error' without one would end the worker.
 */
export function listen(host: string, port: number, onClient: (sock: Socket) => void, log: Logger): Promise<Server> {
  const server = createServer(serverOptions, onClient);
  return new Promise((resolve, reject) => {
    let listening = false;
    server.on('error', (err) => {
      if (listening) log.warn({ port, err: err.message }, 'listener error');
      else reject(err);
    });
    server.listen({ host, port, backlog: 4096 }, () => {
      listening = true;
      resolve(server);
    });
  });
}

/**
 * One TCP listener per app pool on its `publicPort`, opened when the pool appears and
 * closed (open connections stay) when it goes or moves to another port. A port that is one
 * of the proxy ports or another pool's is skipped: in a cluster worker a second listen on a
 * port this process already serves succeeds and would share its connections.
 */
export class AppListeners {
  private readonly open = new Map<string, { port: number; server: Server | undefined }>();
  /** Pools refused a port, so the refusal is logged once, not on every table change. */
  private readonly refused = new Map<string, number>();

  constructor(
    private readonly host: string,
    private readonly reserved: ReadonlySet<number>,
    private readonly log: Logger,
    private readonly onClient: (sock: Socket, poolId: string) => void,
  ) {}

  sync(pools: Iterable<RoutePool>): void {
    const wanted = new Map<string, number>();
    for (const p of pools) if (p.spec.kind === 'app' && p.spec.publicPort) wanted.set(p.id, p.spec.publicPort);
    for (const [poolId, l] of this.open) {
      if (wanted.get(poolId) !== l.port) {
        l.server?.close();
        this.open.delete(poolId);
      }
    }
    for (const poolId of this.refused.keys()) if (!wanted.has(poolId)) this.refused.delete(poolId);
    const taken = new Set([...this.open.values()].map((l) => l.port));
    for (const [poolId, port] of wanted) {
      if (this.open.has(poolId)) continue;
      if (this.reserved.has(port) || taken.has(port)) {
        if (this.refused.get(poolId) !== port) {
          this.refused.set(poolId, port);
          this.log.warn(
            { poolId, port },
            this.reserved.has(port) ? 'app pool publicPort is a proxy port; not listening' : 'app pool publicPort is taken by another pool; not listening',
          );
        }
        continue;
      }
      this.refused.delete(poolId);
      taken.add(port);
      const entry: { port: number; server: Server | undefined } = { port, server: undefined };
      this.open.set(poolId, entry);
      listen(this.host, port, (sock) => this.onClient(sock, poolId), this.log).then(
        (server) => {
          if (this.open.get(poolId) === entry) entry.server = server;
          else server.close();
        },
        (err: Error) => {
          // Dropped so the next sync (event or periodic rebuild) tries again.
          if (this.open.get(poolId) === entry) this.open.delete(poolId);
          this.log.warn({ poolId, port, err: err.message }, 'cannot listen for app pool');
        },
      );
    }
  }

  close(): void {
    for (const l of this.open.values()) l.server?.close();
    this.open.clear();
  }
}
