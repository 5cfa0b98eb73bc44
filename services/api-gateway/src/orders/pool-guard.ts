import type { Issue, PoolView } from '@switchyard/contracts';
import { sql, type Kysely } from '@switchyard/db';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { RequestError } from '../http/errors.js';
import { IDEMPOTENCY_TTL_MS } from '../idempotency/store.js';
import type { Caller } from '../keys.js';
import type { Database } from '../tables.js';
import { isExempt, nodeAdditions, quotaRefusals, RATE_FIELD, specRefusals, withPending, type PendingOrder, type PoolLimits, type TenantUsage } from './pool-policy.js';
import type { OrderRequest } from './schemas.js';

/** Spends a tenant's node additions of the current minute; `retryAfterMs` when they are spent. */
export interface NodeAddLimiter {
  consume(tenantId: string, points: number): Promise<{ ok: true } | { ok: false; retryAfterMs: number }>;
}

/**
 * Shared by every gateway process through Redis. Should Redis fail, each process falls back to
 * a budget of its own in memory rather than letting the orders through unlimited.
 */
export function nodeAddLimiter(perMinute: number, redis?: unknown): NodeAddLimiter {
  const opts = { keyPrefix: 'switchyard:node-adds', points: perMinute, duration: 60 };
  const memory = new RateLimiterMemory(opts);
  const limiter = redis ? new RateLimiterRedis({ ...opts, storeClient: redis, insuranceLimiter: memory }) : memory;
  return {
    async consume(tenantId, points) {
      try {
        await limiter.consume(tenantId, points);
        return { ok: true };
      } catch (err) {
        if (err instanceof RateLimiterRes) return { ok: false, retryAfterMs: err.msBeforeNext };
        throw err;
      }
    },
  };
}

export interface PoolGuardDeps {
  db: Kysely<Database>;
  fleet: { snapshot(tenantId: string): Promise<{ pools: PoolView[]; nodes: { nodeId: string }[] }> };
  limits: PoolLimits;
  limiter: NodeAddLimiter;
}

const COUNTED: OrderRequest['type'][] = ['pool.create', 'pool.scale', 'node.add'];

/**
 * Checks an order against the pool policy before it is placed (`place`), or throws the
 * refusal: 403 naming the field and the limit, 429 with Retry-After for the node rate.
 */
export function createPoolGuard(deps: PoolGuardDeps) {
  const { db, fleet, limits, limiter } = deps;
  // One check at a time per tenant in this process: two orders placed together each see the
  // other as pending. Between gateway processes the window is a snapshot's round trip.
  const turns = new Map<string, Promise<unknown>>();
  function inTurn<T>(tenantId: string, work: () => Promise<T>): Promise<T> {
    const previous = turns.get(tenantId) ?? Promise.resolve();
    const mine = previous.catch(() => undefined).then(work);
    turns.set(tenantId, mine);
    const forget = () => {
      if (turns.get(tenantId) === mine) turns.delete(tenantId);
    };
    mine.then(forget, forget);
    return mine;
  }

  async function usageOf(tenantId: string): Promise<TenantUsage> {
    const [{ pools, nodes }, pending] = await Promise.all([fleet.snapshot(tenantId), pendingOrders(tenantId)]);
    const live = pools.map((p) => ({ poolId: p.poolId, name: p.name, kind: p.spec.kind, country: p.spec.country, min: p.spec.nodes.min, max: p.spec.nodes.max }));
    return withPending(live, new Set(nodes.map((n) => n.nodeId)), pending);
  }

  async function pendingOrders(tenantId: string): Promise<PendingOrder[]> {
    const rows = await db
      .selectFrom('orders')
      .select(['request', 'result'])
      .where('tenant_id', '=', tenantId)
      .where('status', 'in', ['accepted', 'in_progress'])
      .where('type', 'in', COUNTED)
      .execute();
    return rows as PendingOrder[];
  }

  /** A retry of an order already placed is answered by the repository, not counted again. */
  async function keyUsed(tenantId: string, key: string | undefined): Promise<boolean> {
    if (key === undefined) return false;
    // An expired key is free for a new order (placeOrder lets go of it), which is counted.
    const row = await db
      .selectFrom('orders')
      .select('id')
      .where('tenant_id', '=', tenantId)
      .where('idempotency_key', '=', key)
      .where('created_at', '>=', sql<Date>`now() - make_interval(secs => ${IDEMPOTENCY_TTL_MS / 1000})`)
      .executeTakeFirst();
    return row !== undefined;
  }

  return {
    /** `reply` gets the Retry-After of a 429 (the error handler keeps headers set before the throw). */
    async place<T>(
      caller: Caller,
      order: OrderRequest,
      idempotencyKey: string | undefined,
      reply: { header(name: string, value: string): unknown },
      place: () => Promise<T>,
    ): Promise<T> {
      if (order.pool) {
        const refused = specRefusals(order.pool, caller, limits);
        if (refused.length) throw forbidden(refused);
      }
      if (isExempt(caller) || !COUNTED.includes(order.type)) return place();
      return inTurn(caller.tenantId, async () => {
        if (await keyUsed(caller.tenantId, idempotencyKey)) return place();
        const usage = await usageOf(caller.tenantId);
        const refused = quotaRefusals(usage, order, limits);
        if (refused.length) throw forbidden(refused);
        const adds = nodeAdditions(usage, order, limits);
        if (adds > 0) {
          const spent = await limiter.consume(caller.tenantId, adds);
          if (!spent.ok) {
            const retryAfterSec = Math.max(1, Math.ceil(spent.retryAfterMs / 1000));
            reply.header('retry-after', String(retryAfterSec));
            throw tooMany(order, retryAfterSec, limits);
          }
        }
        return place();
      });
    },
  };
}
export type PoolGuard = ReturnType<typeof createPoolGuard>;

function forbidden(issues: Issue[]): RequestError {
  return new RequestError(403, 'forbidden', issues.map((i) => `${i.path}: ${i.message}`).join('; '), issues);
}

function tooMany(order: OrderRequest, retryAfterSec: number, limits: PoolLimits): RequestError {
  const path = RATE_FIELD[order.type] ?? 'type';
  const message = `at most ${limits.nodeAddsPerMinute} node additions per minute (TENANT_NODE_ADDS_PER_MINUTE); retry in ${retryAfterSec} s`;
  return new RequestError(429, 'rate_limited', `${path}: ${message}`, [{ path, message }]);
}
