import { readFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { eventually } from './async.js';

/**
 * The first port of the kernel's ephemeral range: outbound connections take their local ports
 * from there, so a port chosen above it may be taken by one between the choice and the listen
 * of the process it was chosen for (a CI run failed so: EADDRINUSE).
 */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (Number.isInteger(low) && low > 11_000) return low;
  } catch {}
  return 32_768;
}
const PORTS_FROM = 10_000;
const PORTS_TO = ephemeralLow() - 1;

function tryListen(port: number): Promise<number | undefined> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(undefined));
    server.listen(port, '127.0.0.1', () => {
      const bound = (server.address() as { port: number }).port;
      server.close(() => resolve(bound));
    });
  });
}

/** A port free on 127.0.0.1 now, below the ephemeral range (see ephemeralLow). */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await tryListen(PORTS_FROM + Math.floor(Math.random() * (PORTS_TO - PORTS_FROM)));
    if (port !== undefined) return port;
  }
  const any = await tryListen(0);
  if (any === undefined) throw new Error('no free port on 127.0.0.1');
  return any;
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

/**
 * `target`: a loopback port, or a unix socket path (the Docker engine's). `listenHost`: where the
 * relay listens, loopback unless given (the root end of a test namespace's veth, for a service
 * run inside it).
 */
export async function startCuttableLink(target: number | { path: string }, listenHost = '127.0.0.1'): Promise<CuttableLink> {
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
    await new Promise<void>((resolve) => server!.listen(port, listenHost, resolve));
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
