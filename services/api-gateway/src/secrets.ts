/**
 * A pool's secretEnv at the gateway: the one place its values arrive in plaintext. They are
 * sealed before anything is stored or published (the order's request, the outbox, the
 * command), and no answer of the API shows them again, sealed or not: only their names.
 */
import { MAX_ENV_VALUE_BYTES, type Issue, type PoolSpec } from '@switchyard/contracts';
import { open, REDACTED, seal, SecretsError } from '@switchyard/secrets';
import { badRequest, RequestError } from './http/errors.js';

type WithPool = { type: string; pool?: PoolSpec | undefined };

function mapSecrets<T extends WithPool>(request: T, value: (v: string, name: string) => string): T {
  const secretEnv = request.pool?.secretEnv;
  if (!secretEnv) return request;
  const mapped = Object.fromEntries(Object.entries(secretEnv).map(([name, v]) => [name, value(v, name)]));
  return { ...request, pool: { ...request.pool!, secretEnv: mapped } };
}

/** The spec as the API shows it: every secret named, none shown. */
export function redactSpec(spec: PoolSpec): PoolSpec {
  return mapSecrets({ type: 'view', pool: spec }, () => REDACTED).pool!;
}

/** An order's stored request as the API shows it (the column holds ciphertext; that stays inside too). */
export function redactRequest(request: unknown): unknown {
  if (typeof request !== 'object' || request === null || !('pool' in request)) return request;
  const pool = (request as Partial<WithPool>).pool;
  if (typeof pool !== 'object' || pool === null || typeof pool.secretEnv !== 'object' || pool.secretEnv === null) return request;
  return mapSecrets(request as WithPool, () => REDACTED);
}

export interface OrderSecrets {
  /**
   * Refuses a secret too large, or any when no key is set: what `seal` would refuse, asked
   * first so a refused order spends none of the tenant's node-addition budget.
   */
  check(request: WithPool): void;
  /** The request with its secrets sealed; refuses what `check` refuses. */
  seal<T extends WithPool>(request: T): T;
  /** Whether an order stored earlier (sealed) was placed with the same secrets as this request. */
  same(stored: unknown, request: WithPool): boolean;
}

/**
 * `key` is SECRETS_KEY; without it the gateway still takes every order that has no secrets
 * and refuses, with a 503 naming the setting, the ones that do.
 */
export function orderSecrets(key: Buffer | undefined): OrderSecrets {
  const check = (request: WithPool): Buffer | undefined => {
    const secretEnv = request.pool?.secretEnv;
    if (!secretEnv || Object.keys(secretEnv).length === 0) return undefined;
    const issues: Issue[] = [];
    for (const [name, value] of Object.entries(secretEnv)) {
      const bytes = Buffer.byteLength(value, 'utf8');
      if (bytes > MAX_ENV_VALUE_BYTES) issues.push({ path: `pool.secretEnv.${name}`, message: `at most ${MAX_ENV_VALUE_BYTES} bytes (UTF-8), got ${bytes}` });
    }
    if (issues.length) throw badRequest(issues);
    if (!key) {
      throw new RequestError(503, 'secrets_unavailable', 'pool.secretEnv: this Switchyard has no SECRETS_KEY, so it cannot store secrets; the operator must set it', [
        { path: 'pool.secretEnv', message: 'secrets are not configured (SECRETS_KEY)' },
      ]);
    }
    return key;
  };
  return {
    check: (request) => void check(request),
    seal(request) {
      const sealWith = check(request);
      return sealWith ? mapSecrets(request, (v) => seal(v, sealWith)) : request;
    },
    same(stored, request) {
      const given = request.pool?.secretEnv ?? {};
      const kept = ((stored as Partial<WithPool> | null)?.pool?.secretEnv ?? {}) as Record<string, string>;
      const names = Object.keys(given);
      if (names.length !== Object.keys(kept).length) return false;
      if (names.length === 0) return true;
      if (!key) return false;
      try {
        return names.every((name) => kept[name] !== undefined && open(kept[name], key) === given[name]);
      } catch (err) {
        // Sealed under a key this gateway no longer has: it cannot be the same request.
        if (err instanceof SecretsError) return false;
        throw err;
      }
    },
  };
}
