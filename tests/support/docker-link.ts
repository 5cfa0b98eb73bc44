import { connect, createServer, type Server, type Socket } from 'node:net';
import { freePort } from './net.js';

/**
 * A TCP listener on 127.0.0.1 relaying to the Docker engine's unix socket, which a test can cut
 * and restore: a service given DOCKER_HOST=tcp://127.0.0.1:<port> then sees dockerd go away
 * and come back, while the engine itself (shared with other tests) keeps running.
 */
export interface DockerLink {
  readonly port: number;
  readonly dockerHost: string;
  /** Drops every connection (event and stats streams included) and refuses new ones. */
  cut(): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function startDockerLink(socketPath = '/var/run/docker.sock'): Promise<DockerLink> {
  const port = await freePort();
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  const listen = async () => {
    if (server) return;
    const s = createServer((client) => {
      const upstream = connect(socketPath);
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
    server = s;
    await new Promise<void>((resolve) => s.listen(port, '127.0.0.1', resolve));
  };
  const cut = async () => {
    const s = server;
    server = undefined;
    for (const sock of sockets) sock.destroy();
    sockets.clear();
    if (s) await new Promise((resolve) => s.close(resolve));
  };
  await listen();
  return { port, dockerHost: `tcp://127.0.0.1:${port}`, cut, restore: listen, close: cut };
}
