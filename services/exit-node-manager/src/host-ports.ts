import { createServer } from 'node:net';

/**
 * A port nothing listens on right now on `host`: the kernel picks it for a listener that is
 * closed again at once. A host-network node then listens on it; the short window in which
 * another process could take it is the price of not publishing through Docker.
 */
export async function pickFreePort(host: string): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}
