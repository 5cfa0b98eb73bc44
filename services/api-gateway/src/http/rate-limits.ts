import type { FastifyReply } from 'fastify';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { RequestError } from './errors.js';

export interface RateLimitSettings {
  /** Requests per key per window (API_RATE_LIMIT_PER_KEY). */
  perKey: number;
  /** Requests per source address per window, authenticated or not (API_RATE_LIMIT_PER_ADDRESS). */
  perAddress: number;
  windowSec: number;
  /** Failed authentications per source address per failure window; then the address is refused. */
  authFailuresPerAddress: number;
  authFailureWindowSec: number;
  /** Redis key prefix: gateways sharing it share their budgets (API_RATE_LIMIT_PREFIX). */
  prefix: string;
}

export const DEFAULT_RATE_LIMITS: RateLimitSettings = {
  perKey: 12_000,
  perAddress: 30_000,
  windowSec: 60,
  authFailuresPerAddress: 30,
  authFailureWindowSec: 300,
  prefix: 'switchyard:rl',
};

type Reply = Pick<FastifyReply, 'header' | 'getHeader'>;

export interface RateLimits {
  /** Spends one request of the source address; a 429 when its window is spent. */
  address(ip: string, reply: Reply): Promise<void>;
  /** Spends one request of the key; a 429 when its window is spent. */
  key(keyId: string, reply: Reply): Promise<void>;
  /** Refuses (429) an address whose failed authentications are spent, before its credentials are looked at. */
  authAllowed(ip: string, reply: Reply): Promise<void>;
  /** Counts a failed authentication of the address. */
  authFailed(ip: string): Promise<void>;
}

/**
 * The gateway's one place for request budgets, fixed windows in Redis shared by every gateway
 * process (rate-limiter-flexible). Should Redis fail, each process falls back to budgets of its
 * own in memory rather than letting requests through unlimited.
 */
export function createRateLimits(settings: RateLimitSettings, redis?: unknown): RateLimits {
  const limiter = (name: string, points: number, duration: number): RateLimiterAbstract => {
    const opts = { keyPrefix: `${settings.prefix}:${name}`, points, duration };
    const memory = new RateLimiterMemory(opts);
    return redis ? new RateLimiterRedis({ ...opts, storeClient: redis, insuranceLimiter: memory }) : memory;
  };
  const perAddress = limiter('addr', settings.perAddress, settings.windowSec);
  const perKey = limiter('key', settings.perKey, settings.windowSec);
  const failures = limiter('authfail', settings.authFailuresPerAddress, settings.authFailureWindowSec);

  const resetSec = (res: RateLimiterRes) => Math.max(1, Math.ceil(res.msBeforeNext / 1000));

  /** The headers show the tighter of the budgets a request spent (address, then key). */
  function show(reply: Reply, limit: number, res: RateLimiterRes): void {
    const remaining = Math.max(0, res.remainingPoints);
    const shown = reply.getHeader('ratelimit-remaining');
    if (shown !== undefined && Number(shown) < remaining) return;
    reply.header('ratelimit-limit', String(limit));
    reply.header('ratelimit-remaining', String(remaining));
    reply.header('ratelimit-reset', String(resetSec(res)));
  }

  function refuse(reply: Reply, limit: number, res: RateLimiterRes, field: string, what: string): RequestError {
    const retry = resetSec(res);
    reply.header('ratelimit-limit', String(limit));
    reply.header('ratelimit-remaining', '0');
    reply.header('ratelimit-reset', String(retry));
    reply.header('retry-after', String(retry));
    const message = `${what}; retry in ${retry} s`;
    return new RequestError(429, 'rate_limited', `${field}: ${message}`, [{ path: field, message }]);
  }

  async function spend(l: RateLimiterAbstract, id: string, limit: number, reply: Reply, field: string, what: string): Promise<void> {
    try {
      show(reply, limit, await l.consume(id));
    } catch (err) {
      if (err instanceof RateLimiterRes) throw refuse(reply, limit, err, field, what);
      throw err;
    }
  }

  return {
    address: (ip, reply) =>
      spend(
        perAddress,
        ip,
        settings.perAddress,
        reply,
        'address',
        `at most ${settings.perAddress} requests per ${settings.windowSec} s from one address (API_RATE_LIMIT_PER_ADDRESS)`,
      ),
    key: (keyId, reply) =>
      spend(perKey, keyId, settings.perKey, reply, 'authorization', `at most ${settings.perKey} requests per ${settings.windowSec} s with one API key (API_RATE_LIMIT_PER_KEY)`),
    async authAllowed(ip, reply) {
      const res = await failures.get(ip);
      if (res && res.consumedPoints >= settings.authFailuresPerAddress) {
        throw refuse(
          reply,
          settings.authFailuresPerAddress,
          res,
          'authorization',
          `too many failed authentications from this address (at most ${settings.authFailuresPerAddress} per ${settings.authFailureWindowSec} s, API_AUTH_FAILURES_PER_ADDRESS)`,
        );
      }
    },
    async authFailed(ip) {
      // Spent is spent: the next request from the address is refused by authAllowed.
      await failures.consume(ip).catch((err: unknown) => {
        if (!(err instanceof RateLimiterRes)) throw err;
      });
    },
  };
}
