import { createServer, type Server, type Socket } from 'node:net';

/**
 * Proxy mode: the activator's own public port for each node port. A port is bound once (any
 * free port), stored, and bound again to the same number after a restart.
 */
export class ProxyListeners {
  private readonly servers = new Map<string, { server: Server; port: number }>();

  constructor(
    private readonly host: string,
    private readonly onConnection: (socket: Socket, nodeId: string, portName: string) => void,
  ) {}

  /** Resolves with the bound port; `wanted` null = any free port. */
  async ensure(nodeId: string, portName: string, wanted: number | null): Promise<number> {
    const key = `${nodeId}/${portName}`;
    const existing = this.servers.get(key);
    if (existing && (wanted === null || existing.port === wanted)) return existing.port;
    if (existing) await this.closeOne(key);
    // Paused until the activator decides: nothing is read from a held connection.
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => this.onConnection(socket, nodeId, portName));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(wanted ?? 0, this.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const port = (server.address() as { port: number }).port;
    this.servers.set(key, { server, port });
    return port;
  }

  close(nodeId: string): void {
    for (const key of [...this.servers.keys()]) if (key.startsWith(`${nodeId}/`)) void this.closeOne(key);
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.servers.keys()].map((key) => this.closeOne(key)));
  }

  private async closeOne(key: string): Promise<void> {
    const entry = this.servers.get(key);
    if (!entry) return;
    this.servers.delete(key);
    // Stops accepting; connections already forwarded go on.
    await new Promise((resolve) => entry.server.close(resolve));
  }
}
