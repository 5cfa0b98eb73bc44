import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:net';
import { once } from 'node:events';
import { httpGetRequest, proxyRequest, runProbe, statusRange, type Probe } from '../src/probes.js';

/** A loopback server that writes `answer` to every connection (and then closes it, or not). */
async function server(answer: string | null, close = true): Promise<{ port: number; server: Server }> {
  const s = createServer((sock) => {
    sock.on('error', () => undefined);
    sock.once('data', () => {
      if (answer === null) return;
      if (close) sock.end(answer);
      else sock.write(answer);
    });
  });
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  return { port: (s.address() as { port: number }).port, server: s };
}

function probe(p: Probe): Promise<{ ok: boolean; latencyMs: number; reason: string }> {
  return new Promise((resolve) => runProbe(p, (ok, latencyMs, reason) => resolve({ ok, latencyMs, reason })));
}

describe('probes', () => {
  const servers: Server[] = [];
  let ok200: number;
  let status500: number;
  let garbage: number;
  let silent: number;
  let endless: number;
  let closedPort: number;

  beforeAll(async () => {
    const made = await Promise.all([
      server('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'),
      server('HTTP/1.1 500 Internal Server Error\r\n\r\n'),
      server('SSH-2.0-OpenSSH_9.2\r\n'),
      server(null),
      server('x'.repeat(5000), false),
    ]);
    [ok200, status500, garbage, silent, endless] = made.map((m) => m.port) as [number, number, number, number, number];
    servers.push(...made.map((m) => m.server));
    const tmp = await server(null);
    closedPort = tmp.port;
    await new Promise((r) => tmp.server.close(r));
  });
  afterAll(() => servers.forEach((s) => s.close()));

  const http = (port: number, expect?: number): Probe => ({
    type: 'http',
    host: '127.0.0.1',
    port,
    timeoutMs: 300,
    request: httpGetRequest(`127.0.0.1:${port}`, '/health'),
    accepts: statusRange(expect),
  });

  it('tcp passes on connect and fails on a refused port', async () => {
    expect((await probe({ type: 'tcp', host: '127.0.0.1', port: ok200, timeoutMs: 300 })).ok).toBe(true);
    const refused = await probe({ type: 'tcp', host: '127.0.0.1', port: closedPort, timeoutMs: 300 });
    expect(refused).toMatchObject({ ok: false, reason: 'tcp: ECONNREFUSED' });
  });

  it('http passes on an expected status and fails on another', async () => {
    expect((await probe(http(ok200))).ok).toBe(true);
    expect(await probe(http(status500))).toMatchObject({ ok: false, reason: 'http: status 500' });
    expect(await probe(http(ok200, 204))).toMatchObject({ ok: false, reason: 'http: status 200' });
  });

  it('http fails (and does not throw) on garbage, silence and an endless non-HTTP stream', async () => {
    expect(await probe(http(garbage))).toMatchObject({ ok: false, reason: 'http: not an HTTP answer' });
    expect(await probe(http(endless))).toMatchObject({ ok: false, reason: 'http: not an HTTP answer' });
    const quiet = await probe(http(silent));
    expect(quiet).toMatchObject({ ok: false, reason: 'http: no answer within 300 ms' });
    expect(quiet.latencyMs).toBeGreaterThanOrEqual(290);
  });

  it('builds absolute-form GETs for http targets and CONNECT for https targets', () => {
    expect(proxyRequest(new URL('http://127.0.0.1:9/204')).request.toString()).toMatch(/^GET http:\/\/127\.0\.0\.1:9\/204 HTTP\/1\.1\r\nHost: 127\.0\.0\.1:9\r\n/);
    const tls = proxyRequest(new URL('https://example.com/x'));
    expect(tls.request.toString()).toMatch(/^CONNECT example\.com:443 HTTP\/1\.1\r\n/);
    expect(tls.accepts?.(200)).toBe(true);
    expect(tls.accepts?.(302)).toBe(false);
  });
});
