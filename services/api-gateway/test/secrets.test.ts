import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { PoolSpec } from '@switchyard/contracts';
import { open } from '@switchyard/secrets';
import { RequestError } from '../src/http/errors.js';
import { orderSecrets, redactRequest, redactSpec } from '../src/secrets.js';

const key = randomBytes(32);
const pool: PoolSpec = {
  name: 'vault',
  kind: 'app',
  image: 'switchyard/http-app:dev',
  nodes: { min: 1, max: 1 },
  ports: [{ name: 'main', containerPort: 8080 }],
  env: { PLAIN: 'visible' },
  secretEnv: { API_TOKEN: 's3cret', DB_PASSWORD: 'pa55' },
};
const order = { type: 'pool.create' as const, pool };

const refusal = (fn: () => unknown): RequestError => {
  try {
    fn();
  } catch (err) {
    if (err instanceof RequestError) return err;
    throw err;
  }
  throw new Error('not refused');
};

describe('sealing an order', () => {
  it('seals every secret value and leaves the rest of the request as it was', () => {
    const sealed = orderSecrets(key).seal(order);
    expect(sealed.pool.env).toEqual({ PLAIN: 'visible' });
    expect(Object.keys(sealed.pool.secretEnv!)).toEqual(['API_TOKEN', 'DB_PASSWORD']);
    expect(JSON.stringify(sealed)).not.toMatch(/s3cret|pa55/);
    expect(open(sealed.pool.secretEnv!['API_TOKEN']!, key)).toBe('s3cret');
    // The caller's object is not changed: the plaintext stays only where it came from.
    expect(pool.secretEnv!['API_TOKEN']).toBe('s3cret');
  });

  it('passes orders without secrets through, with or without a key', () => {
    const plain = { type: 'pool.delete' as const, poolId: '11111111-2222-4333-8444-555555555555' };
    expect(orderSecrets(undefined).seal(plain)).toBe(plain);
    expect(orderSecrets(undefined).seal({ ...order, pool: { ...pool, secretEnv: {} } }).pool.secretEnv).toEqual({});
  });

  it('refuses a value over MAX_ENV_VALUE_BYTES counted in UTF-8 bytes, naming the field', () => {
    const err = refusal(() => orderSecrets(key).seal({ ...order, pool: { ...pool, secretEnv: { OK: 'x'.repeat(4096), WIDE: 'é'.repeat(2049) } } }));
    expect(err.statusCode).toBe(400);
    expect(err.issues).toEqual([{ path: 'pool.secretEnv.WIDE', message: 'at most 4096 bytes (UTF-8), got 4098' }]);
  });

  it('refuses secrets with a 503 naming SECRETS_KEY when there is no key', () => {
    const err = refusal(() => orderSecrets(undefined).seal(order));
    expect(err.statusCode).toBe(503);
    expect(err.message).toContain('SECRETS_KEY');
    expect(err.message).not.toContain('s3cret');
  });

  it('tells a retry with the same secrets from one with other secrets', () => {
    const secrets = orderSecrets(key);
    const stored = JSON.parse(JSON.stringify(secrets.seal(order)));
    expect(secrets.same(stored, order)).toBe(true);
    expect(secrets.same(stored, { ...order, pool: { ...pool, secretEnv: { API_TOKEN: 's3cret', DB_PASSWORD: 'other' } } })).toBe(false);
    expect(secrets.same(stored, { ...order, pool: { ...pool, secretEnv: { API_TOKEN: 's3cret' } } })).toBe(false);
    expect(orderSecrets(randomBytes(32)).same(stored, order)).toBe(false);
  });
});

describe('redaction', () => {
  it('names secrets and shows none, sealed or not', () => {
    const sealed = orderSecrets(key).seal(order);
    expect(redactSpec(sealed.pool).secretEnv).toEqual({ API_TOKEN: '(secret)', DB_PASSWORD: '(secret)' });
    expect(redactSpec(sealed.pool).env).toEqual({ PLAIN: 'visible' });
    expect(redactRequest(JSON.parse(JSON.stringify(sealed)))).toMatchObject({ pool: { secretEnv: { API_TOKEN: '(secret)', DB_PASSWORD: '(secret)' } } });
    expect(redactRequest({ type: 'node.add', country: 'JP' })).toEqual({ type: 'node.add', country: 'JP' });
    expect(redactRequest(null)).toBe(null);
  });
});
