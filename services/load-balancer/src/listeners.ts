import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import type { RoutePool } from './table.js';

const serverOptions = { allowHalfOpen: true, noDelay: true } as const;

export function listen(host: string, port: number, onClient: (sock: Socket) => void): Promise<Server> {
  const server = createServer(serverOptions, onClient);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, backlog: 4096 }, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

/**
 * One TCP listener per app pool on its `publicPort`, opened when the pool appears and
 * closed (open connections stay) when it goes or moves to another port.
 */
export class AppListeners {
  private readonly open = new Map<string, { port: number; server: Server | undefined }>();

  constructor(
    private readonly host: string,
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
    for (const [poolId, port] of wanted) {
      if (this.open.has(poolId)) continue;
      const entry: { port: number; server: Server | undefined } = { port, server: undefined };
      this.open.set(poolId, entry);
      listen(this.host, port, (sock) => this.onClient(sock, poolId)).then(
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
