import { connect, createServer, type Server, type Socket } from 'node:net';
import { eventually } from './async.js';

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const accepts = () =>
    new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
  const ok = await eventually(accepts, Boolean, timeoutMs, `127.0.0.1:${port} listening`, { intervalMs: 50, returnLast: true });
  if (!ok) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
}

/**
 * A TCP relay on a loopback port to a real server (Postgres, NATS) that a test can cut and
 * restore, to see what a service does when that dependency goes away and comes back.
 */
export interface CuttableLink {
  readonly port: number;
  /** Drops every connection and refuses new ones. */
  cut(): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

/** `target`: a loopback port, or a unix socket path (the Docker engine's). */
export async function startCuttableLink(target: number | { path: string }): Promise<CuttableLink> {
  const port = await freePort();
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  const listen = async () => {
    if (server) return;
    server = createServer((client) => {
      const upstream = typeof target === 'number' ? connect(target, '127.0.0.1') : connect(target.path);
      sockets.add(client).add(upstream);
      const drop = () => {
        client.destroy();
        upstream.destroy();
        sockets.delete(client);
        sockets.delete(upstream);
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => server!.listen(port, '127.0.0.1', resolve));
  };
  const cut = async () => {
    const s = server;
    server = undefined;
    for (const sock of sockets) sock.destroy();
    sockets.clear();
    if (s) await new Promise((resolve) => s.close(resolve));
  };
  await listen();
  return { port, cut, restore: listen, close: cut };
}
