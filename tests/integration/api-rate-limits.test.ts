import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { eventually, freePort, startTestSystem, type TestSystem } from '@switchyard/testkit';

// Request budgets of a real gateway in the shared Redis, with low limits of the test's own.
// Each case calls from its own loopback source address (127.0.0.x: the whole /8 is this
// host), so one case's address budget does not spend another's.

const PER_KEY = 5;
const PER_ADDRESS = 40;
const WINDOW_SEC = 4;
const AUTH_FAILURES = 3;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: any;
}

/** A GET to a gateway on 127.0.0.1 from a chosen loopback source address. */
function getFrom(port: number, path: string, from: string, key?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', localAddress: from, headers: key ? { authorization: `Bearer ${key}` } : {} }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          /* not JSON */
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

describe('rate limits', () => {
  let sys: TestSystem;

  const get = (path: string, from: string, key?: string) => getFrom(sys.apiPort, path, from, key);

  /** Calls until the first 429 (at most `max` calls); the answers in order. */
  async function untilRefused(call: () => Promise<Answer>, max: number): Promise<Answer[]> {
    const seen: Answer[] = [];
    for (let i = 0; i < max; i++) {
      const res = await call();
      seen.push(res);
      if (res.status === 429) break;
    }
    return seen;
  }

  const newKey = async () => {
    const res = await sys.http('POST', '/v1/tenants', { body: { name: `rl-${randomBytes(3).toString('hex')}` } });
    expect(res.status).toBe(201);
    return res.body.apiKey as string;
  };

  const expectLimitHeaders = (res: Answer, limit: number) => {
    expect(res.headers['ratelimit-limit']).toBe(String(limit));
    expect(Number(res.headers['ratelimit-remaining'])).toBeGreaterThanOrEqual(0);
    expect(Number(res.headers['ratelimit-reset'])).toBeGreaterThan(0);
    expect(Number(res.headers['ratelimit-reset'])).toBeLessThanOrEqual(WINDOW_SEC);
  };

  beforeAll(async () => {
    sys = await startTestSystem();
    await sys.start('api-gateway', {
      API_RATE_LIMIT_PER_KEY: String(PER_KEY),
      API_RATE_LIMIT_PER_ADDRESS: String(PER_ADDRESS),
      API_RATE_LIMIT_WINDOW_SEC: String(WINDOW_SEC),
      API_AUTH_FAILURES_PER_ADDRESS: String(AUTH_FAILURES),
      API_AUTH_FAILURE_WINDOW_SEC: String(WINDOW_SEC),
    });
  });
  afterAll(async () => {
    await sys?.close();
  });

  it("trips a key's limit with 429 and the headers, leaves another key alone, and recovers after the window", async () => {
    const [a, b] = [await newKey(), await newKey()];
    const seen = await untilRefused(() => get('/v1/orders', '127.0.0.3', a), 3 * PER_KEY);
    const refused = seen.at(-1)!;
    expect(refused.status).toBe(429);
    const served = seen.slice(0, -1);
    expect(served.length).toBeGreaterThanOrEqual(PER_KEY);
    for (const res of served) {
      expect(res.status).toBe(200);
      expectLimitHeaders(res, PER_KEY);
    }
    // Counting down to nothing.
    expect(served.at(-1)!.headers['ratelimit-remaining']).toBe('0');
    expect(Number(served[0]!.headers['ratelimit-remaining'])).toBe(PER_KEY - 1);

    expectLimitHeaders(refused, PER_KEY);
    expect(refused.headers['ratelimit-remaining']).toBe('0');
    const retryAfter = Number(refused.headers['retry-after']);
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(WINDOW_SEC);
    expect(refused.body).toMatchObject({ error: 'rate_limited', issues: [{ field: 'authorization', message: expect.stringContaining('API_RATE_LIMIT_PER_KEY') }] });

    // The other key, from the same address, spends a budget of its own.
    const other = await get('/v1/orders', '127.0.0.3', b);
    expect(other.status).toBe(200);
    expect(other.headers['ratelimit-remaining']).toBe(String(PER_KEY - 1));

    const back = await eventually(
      () => get('/v1/orders', '127.0.0.3', a),
      (r) => r.status === 200,
      (retryAfter + WINDOW_SEC + 5) * 1000,
      'key served again',
      {
        intervalMs: 500,
      },
    );
    expectLimitHeaders(back, PER_KEY);
  });

  it('limits a source address, with or without a key, while another address is served', async () => {
    const seen = await untilRefused(() => get('/openapi.json', '127.0.0.4'), 3 * PER_ADDRESS);
    const refused = seen.at(-1)!;
    expect(refused.status).toBe(429);
    expect(seen.length - 1).toBeGreaterThanOrEqual(PER_ADDRESS);
    expectLimitHeaders(refused, PER_ADDRESS);
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    expect(refused.body).toMatchObject({ error: 'rate_limited', issues: [{ field: 'address' }] });

    const elsewhere = await get('/openapi.json', '127.0.0.7');
    expect(elsewhere.status).toBe(200);
    expect(elsewhere.headers['ratelimit-remaining']).toBe(String(PER_ADDRESS - 1));
  });

  it('throttles failed authentications per address: a key guesser is refused, other addresses are not', async () => {
    const valid = await newKey();
    const guess = () => `sy_${randomBytes(24).toString('base64url')}`;
    const seen = await untilRefused(() => get('/v1/orders', '127.0.0.5', guess()), 4 * AUTH_FAILURES);
    const refused = seen.at(-1)!;
    expect(refused.status).toBe(429);
    expect(seen.slice(0, -1).every((r) => r.status === 401 && r.body.message === 'unknown API key')).toBe(true);
    expect(seen.length - 1).toBeGreaterThanOrEqual(AUTH_FAILURES);
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    expect(refused.body.issues[0].message).toContain('API_AUTH_FAILURES_PER_ADDRESS');

    // Refused before the key is looked at: even a valid key from there, so guesses learn nothing.
    expect((await get('/v1/orders', '127.0.0.5', valid)).status).toBe(429);
    // Another address still gets answers: a wrong key is a 401, a valid one is served.
    expect((await get('/v1/orders', '127.0.0.6', guess())).status).toBe(401);
    expect((await get('/v1/orders', '127.0.0.6', valid)).status).toBe(200);
    // The compat surface's Basic password shares the same count.
    const basic = await new Promise<number>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: sys.apiPort,
          path: '/api/nodes',
          localAddress: '127.0.0.5',
          headers: { authorization: `Basic ${Buffer.from('controller:wrong-password').toString('base64')}` },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(basic).toBe(429);

    const back = await eventually(
      () => get('/v1/orders', '127.0.0.5', valid),
      (r) => r.status === 200,
      (2 * WINDOW_SEC + 5) * 1000,
      'address served again',
      {
        intervalMs: 500,
      },
    );
    expect(back.status).toBe(200);
  });
});

describe('rate limits across gateway processes', () => {
  let sys: TestSystem;
  let secondPort: number;

  beforeAll(async () => {
    sys = await startTestSystem();
    // A long window: the two processes' counts meet however slow the machine is.
    const limits = { API_RATE_LIMIT_PER_KEY: '10', API_RATE_LIMIT_WINDOW_SEC: '300' };
    await sys.start('api-gateway', limits);
    secondPort = await freePort();
    await sys.start('api-gateway', { ...limits, API_PORT: String(secondPort) });
  });
  afterAll(async () => {
    await sys?.close();
  });

  it("shares a key's budget through Redis: the second process continues the first one's count", async () => {
    const created = await sys.http('POST', '/v1/tenants', { body: { name: `rl-${randomBytes(3).toString('hex')}` } });
    const key = created.body.apiKey as string;
    expect((await getFrom(sys.apiPort, '/v1/orders', '127.0.0.9', key)).headers['ratelimit-remaining']).toBe('9');
    expect((await getFrom(sys.apiPort, '/v1/orders', '127.0.0.9', key)).headers['ratelimit-remaining']).toBe('8');
    const there = await getFrom(secondPort, '/v1/orders', '127.0.0.9', key);
    expect(there.status).toBe(200);
    expect(there.headers['ratelimit-remaining']).toBe('7');
  });
});
