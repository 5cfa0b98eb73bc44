import { connect, type Socket } from 'node:net';

/**
 * One active check, resolved for a node: where to connect and, for http and proxy checks,
 * the request bytes (built once per node, not per check) and which status lines pass.
 */
export interface Probe {
  readonly type: 'tcp' | 'http' | 'proxy';
  readonly host: string;
  readonly port: number;
  readonly timeoutMs: number;
  /** Written on connect; absent for tcp. */
  readonly request?: Buffer;
  /** Whether the status code of the answer passes. */
  readonly accepts?: (status: number) => boolean;
}

/** Called exactly once per probe. `reason` is empty when the probe passed. */
export type ProbeDone = (ok: boolean, latencyMs: number, reason: string) => void;

export type ProbeRunner = (probe: Probe, done: ProbeDone) => void;

// A status line fits comfortably; anything longer without one is not HTTP.
const MAX_HEAD = 1024;
const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})(?: |\r|$)/;

export function statusRange(expect: number | undefined): (status: number) => boolean {
  return expect === undefined ? (s) => s >= 200 && s < 400 : (s) => s === expect;
}

export function httpGetRequest(hostHeader: string, path: string): Buffer {
  return Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${hostHeader}\r\nUser-Agent: switchyard-health\r\nConnection: close\r\n\r\n`, 'latin1');
}

/**
 * Through an HTTP proxy: an absolute-form GET for http:// targets; for https:// a CONNECT,
 * which passes when the proxy opens the tunnel (no TLS is spoken through it).
 */
export function proxyRequest(target: URL): { request: Buffer; accepts?: (status: number) => boolean } {
  if (target.protocol === 'https:') {
    const authority = `${target.hostname}:${target.port || 443}`;
    return {
      request: Buffer.from(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\nUser-Agent: switchyard-health\r\n\r\n`, 'latin1'),
      accepts: (s) => s === 200,
    };
  }
  return { request: httpGetRequest(target.host, target.href) };
}

function errorReason(type: Probe['type'], err: Error & { code?: string }): string {
  return `${type}: ${err.code ?? err.message}`;
}

/**
 * Runs one probe on a fresh connection, bounded by its timeout. The socket is reset rather
 * than closed (as HAProxy does), so a thousand checks a second leave no TIME_WAIT behind.
 */
export const runProbe: ProbeRunner = (probe, done) => {
  const started = performance.now();
  let finished = false;
  let head = '';
  const socket: Socket = connect({ host: probe.host, port: probe.port });

  const finish = (ok: boolean, reason: string) => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    socket.removeAllListeners('data');
    // resetAndDestroy on a socket still connecting would wait for the connect; a timed-out
    // SYN must go now.
    if (socket.connecting || socket.destroyed) socket.destroy();
    else socket.resetAndDestroy();
    done(ok, performance.now() - started, reason);
  };
  const timer = setTimeout(() => finish(false, `${probe.type}: no answer within ${probe.timeoutMs} ms`), probe.timeoutMs);

  socket.on('error', (err) => finish(false, errorReason(probe.type, err)));
  socket.once('connect', () => {
    if (!probe.request) return finish(true, '');
    socket.write(probe.request);
  });
  if (!probe.request) return;
  const accepts = probe.accepts ?? statusRange(undefined);
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => {
    head += chunk;
    const eol = head.indexOf('\n');
    if (eol < 0) {
      if (head.length > MAX_HEAD) finish(false, `${probe.type}: not an HTTP answer`);
      return;
    }
    const m = STATUS_LINE.exec(head.slice(0, eol));
    if (!m) return finish(false, `${probe.type}: not an HTTP answer`);
    const status = Number(m[1]);
    finish(accepts(status), accepts(status) ? '' : `${probe.type}: status ${status}`);
  });
  socket.on('end', () => finish(false, `${probe.type}: closed before a status line`));
  socket.on('close', () => finish(false, `${probe.type}: closed before a status line`));
};
