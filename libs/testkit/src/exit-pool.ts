import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import { once } from 'node:events';
import type { NatsConnection } from '@nats-io/transport-node';
import { eventually } from './async.js';

/**
 * An HTTP server on 127.0.0.1 that exit nodes on the host network can reach. `/hello` answers
 * "hello" and echoes the request's `Via` header back as `x-via`, so a test sees which node a
 * request went through; `/204` is a cheap health-check target.
 */
export interface LoopbackTarget {
  readonly port: number;
  readonly url: string;
  close(): Promise<void>;
}

export async function startLoopbackTarget(): Promise<LoopbackTarget> {
  const server: Server = createServer((req, res) => {
    if (req.url === '/204') {
      res.writeHead(204).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain', 'x-via': String(req.headers['via'] ?? '') }).end('hello');
  });
  server.keepAliveTimeout = 1_000;
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The node id an exit node put in `Via` ("1.1 <node id>"), or "" without one. */
function nodeOfVia(via: string): string {
  return via.split(/\s+/)[1] ?? '';
}

/** One GET through an HTTP proxy in absolute form, on a fresh connection, bounded in time. */
export function proxiedGet(proxyPort: number, url: string, timeoutMs = 5_000): Promise<{ status: number; body: string; via: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: proxyPort, method: 'GET', path: url, agent: false, timeout: timeoutMs, headers: { host: new URL(url).host } },
      (res: IncomingMessage) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, via: nodeOfVia(String(res.headers['x-via'] ?? '')) }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer through the proxy within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

export interface SeenMessage {
  readonly subject: string;
  readonly data: any;
  /** Date.now() when the test received it. */
  readonly at: number;
}

/** Records every message on some subjects, so a test can wait for one that happened already. */
export interface SubjectWatch {
  readonly seen: SeenMessage[];
  next(match: (m: SeenMessage) => boolean, timeoutMs: number): Promise<SeenMessage>;
}

export function watchSubjects(nc: NatsConnection, subjects: string[]): SubjectWatch {
  const seen: SeenMessage[] = [];
  for (const subject of subjects) {
    nc.subscribe(subject, {
      callback: (err, msg) => {
        if (!err) seen.push({ subject: msg.subject, data: msg.json(), at: Date.now() });
      },
    });
  }
  return {
    seen,
    async next(match, timeoutMs) {
      const found = await eventually(
        () => seen.find(match),
        (m) => m !== undefined,
        timeoutMs,
        'a matching message',
        { intervalMs: 20, returnLast: true },
      );
      if (!found) throw new Error(`no matching message within ${timeoutMs} ms; seen: ${JSON.stringify(seen.slice(-20).map((m) => [m.subject, m.data.nodeId, m.data.status]))}`);
      return found;
    },
  };
}

/** A raw request to a Switchyard request subject (Services API), parsed as JSON. */
export async function natsRequest<T>(nc: NatsConnection, subject: string, payload: unknown, timeoutMs = 3_000): Promise<T> {
  const reply = await nc.request(subject, JSON.stringify(payload), { timeout: timeoutMs });
  const code = reply.headers?.get('Nats-Service-Error-Code');
  if (code) throw new Error(`${subject}: ${code} ${reply.headers?.get('Nats-Service-Error')}`);
  return reply.json<T>();
}
