import { request, type IncomingMessage } from 'node:http';

export interface SpeedTestTarget {
  /** The node's HTTP proxy on the host. */
  readonly proxyHost: string;
  readonly proxyPort: number;
  /** Base URL of the speed-test server: GET /204, GET /download?bytes=N, POST /upload; or PUBLIC_SPEEDTEST_URL. */
  readonly baseUrl: string;
  readonly bytes: number;
  readonly signal: AbortSignal;
}

export interface SpeedFigures {
  readonly latencyMs: number;
  readonly downloadMbps: number;
  readonly uploadMbps: number;
}

/** Why a speed test has no result; the message is the reply's `error`. */
export class SpeedTestError extends Error {
  override name = 'SpeedTestError';
}

/**
 * The default target, for hosts on the Internet: Tele2's public speed-test server, plain HTTP
 * (what an exit node's proxy forwards without CONNECT), files of fixed sizes and an upload
 * sink. It does not speak the protocol above, so `planFor` knows its layout.
 */
export const PUBLIC_SPEEDTEST_URL = 'http://speedtest.tele2.net/';
const TELE2_FILES: ReadonlyArray<readonly [number, string]> = [
  [1_048_576, '1MB.zip'],
  [10_485_760, '10MB.zip'],
  [104_857_600, '100MB.zip'],
];

/** What one speed test fetches and sends. */
export interface SpeedTestPlan {
  readonly latency: URL;
  readonly download: URL;
  /** The exact size the download must have. */
  readonly downloadBytes: number;
  readonly upload: URL;
  readonly uploadBytes: number;
}

/** The requests of a test of about `bytes` each way against `baseUrl`. */
export function planFor(baseUrl: string, bytes: number): SpeedTestPlan {
  let base: URL;
  try {
    base = new URL(baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`);
  } catch {
    throw new SpeedTestError(`speed-test target is not a URL: ${baseUrl}`);
  }
  if (base.protocol !== 'http:') throw new SpeedTestError(`speed-test target must be an http:// URL, got ${base.protocol}`);
  if (base.host === new URL(PUBLIC_SPEEDTEST_URL).host) {
    // Sizes are the server's: the file nearest `bytes` by ratio (10 MB for the default 10^7).
    const [size, file] = TELE2_FILES.reduce((best, f) => (Math.abs(Math.log(f[0] / bytes)) < Math.abs(Math.log(best[0] / bytes)) ? f : best));
    return { latency: new URL('1KB.zip', base), download: new URL(file, base), downloadBytes: size, upload: new URL('upload.php', base), uploadBytes: bytes };
  }
  return { latency: new URL('204', base), download: new URL(`download?bytes=${bytes}`, base), downloadBytes: bytes, upload: new URL('upload', base), uploadBytes: bytes };
}

const CHUNK = Buffer.alloc(64 * 1024);
const LATENCY_SAMPLES = 3;

const mbps = (bytes: number, ms: number) => Math.round(((bytes * 8) / Math.max(ms, 0.001) / 1000) * 100) / 100;

interface Exchange {
  readonly res: IncomingMessage;
  /** When the request was sent (performance.now()). */
  readonly sentAt: number;
  readonly headersAt: number;
}

/** One request through the proxy in absolute form, on a connection of its own. */
function viaProxy(t: SpeedTestTarget, method: 'GET' | 'POST', url: URL, body?: number): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const sentAt = performance.now();
    const req = request(
      {
        host: t.proxyHost,
        port: t.proxyPort,
        method,
        path: url.href,
        agent: false,
        signal: t.signal,
        headers: { host: url.host, ...(body !== undefined ? { 'content-length': String(body), 'content-type': 'application/octet-stream' } : {}) },
      },
      (res) => resolve({ res, sentAt, headersAt: performance.now() }),
    );
    req.on('error', (err) => reject(new SpeedTestError(`${method} ${url.pathname} through the node's proxy failed: ${err.message}`)));
    if (body === undefined) return void req.end();
    let left = body;
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, CHUNK.length);
        left -= n;
        if (!req.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
}

/** Reads the whole body, counting bytes; resolves with the count and when the last byte came. */
function drain(res: IncomingMessage): Promise<{ bytes: number; endAt: number; text: string }> {
  return new Promise((resolve, reject) => {
    let bytes = 0;
    let text = '';
    let ended = false;
    res.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (text.length < 512) text += chunk.toString('latin1', 0, Math.min(chunk.length, 512));
    });
    res.on('end', () => {
      ended = true;
      resolve({ bytes, endAt: performance.now(), text });
    });
    res.on('close', () => ended || reject(new SpeedTestError(`the answer broke off after ${bytes} bytes`)));
    res.on('error', (err) => reject(new SpeedTestError(`the answer broke off: ${err.message}`)));
  });
}

function expectOk(res: IncomingMessage, what: string, url: URL): void {
  const status = res.statusCode ?? 0;
  if (status < 200 || status >= 300) {
    res.resume();
    throw new SpeedTestError(`${what} answered ${status}${status === 502 ? ` (the node could not reach the target ${url.host})` : ''}`);
  }
}

/**
 * Latency (median of three small requests), download (a GET of `bytes`, timed from the
 * response head to its last byte) and upload (a POST of `bytes`, timed from sending to the
 * answer), all through the node's HTTP proxy.
 */
export async function measureSpeed(t: SpeedTestTarget): Promise<SpeedFigures> {
  const plan = planFor(t.baseUrl, t.bytes);

  const latencies: number[] = [];
  for (let i = 0; i < LATENCY_SAMPLES; i++) {
    const x = await viaProxy(t, 'GET', plan.latency);
    expectOk(x.res, 'the latency request', plan.latency);
    const { endAt } = await drain(x.res);
    latencies.push(endAt - x.sentAt);
  }
  latencies.sort((a, b) => a - b);

  const down = await viaProxy(t, 'GET', plan.download);
  expectOk(down.res, 'the download', plan.download);
  const got = await drain(down.res);
  if (got.bytes !== plan.downloadBytes) throw new SpeedTestError(`the download sent ${got.bytes} of ${plan.downloadBytes} bytes`);

  const up = await viaProxy(t, 'POST', plan.upload, plan.uploadBytes);
  expectOk(up.res, 'the upload', plan.upload);
  const answer = await drain(up.res);

  return {
    latencyMs: Math.round(latencies[LATENCY_SAMPLES >> 1]! * 100) / 100,
    downloadMbps: mbps(got.bytes, got.endAt - down.headersAt),
    uploadMbps: mbps(plan.uploadBytes, answer.endAt - up.sentAt),
  };
}
