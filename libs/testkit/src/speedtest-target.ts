import { createServer, type Server } from 'node:http';
import { once } from 'node:events';

/**
 * A speed-test server on 127.0.0.1, the protocol health-monitor's speed test speaks:
 * `GET /204` (latency), `GET /download?bytes=N` (N zero bytes), `POST /upload` (reads the
 * body, answers `{"bytes": N}`). Host-network exit nodes reach it through their proxy.
 */
export interface SpeedTestTarget {
  readonly port: number;
  readonly url: string;
  /** Bytes received by /upload so far. */
  uploaded(): number;
  close(): Promise<void>;
}

const MAX_BYTES = 1_000_000_000;
const ZEROS = Buffer.alloc(64 * 1024);

export async function startSpeedTestTarget(): Promise<SpeedTestTarget> {
  let uploaded = 0;
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://target');
    if (url.pathname === '/204') {
      res.writeHead(204).end();
      return;
    }
    if (req.method === 'GET' && url.pathname === '/download') {
      const bytes = Number(url.searchParams.get('bytes'));
      if (!Number.isInteger(bytes) || bytes < 0 || bytes > MAX_BYTES) {
        res.writeHead(400, { 'content-type': 'text/plain' }).end(`bytes must be an integer from 0 to ${MAX_BYTES}\n`);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(bytes) });
      let left = bytes;
      const pump = () => {
        while (left > 0) {
          const n = Math.min(left, ZEROS.length);
          left -= n;
          if (!res.write(n === ZEROS.length ? ZEROS : ZEROS.subarray(0, n))) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
      return;
    }
    if (req.method === 'POST' && url.pathname === '/upload') {
      let bytes = 0;
      req.on('data', (c: Buffer) => (bytes += c.length));
      req.on('end', () => {
        uploaded += bytes;
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ bytes }));
      });
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  });
  server.keepAliveTimeout = 1_000;
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    uploaded: () => uploaded,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
