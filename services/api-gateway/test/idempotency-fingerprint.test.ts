import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonicalJson, fingerprint, fingerprintKey, type FingerprintInput } from '../src/idempotency/fingerprint.js';

const tenantId = '7d3c2a10-1111-4a2b-8c3d-0e9f8a7b6c5d';
const order = {
  type: 'pool.create',
  pool: { name: 'osaka', kind: 'exit', country: 'jp', nodes: { min: 1, max: 2 }, secretEnv: { DB_PASSWORD: 'hunter2-correct-horse' } },
};
const base: FingerprintInput = { method: 'POST', path: '/v1/orders', tenantId, body: order };
const key = fingerprintKey(randomBytes(32));

describe('canonicalJson', () => {
  it('writes the same value the same way whatever the order of its keys', () => {
    const reordered = JSON.parse(
      '{"pool":{"secretEnv":{"DB_PASSWORD":"hunter2-correct-horse"},"nodes":{"max":2,"min":1},"country":"jp","kind":"exit","name":"osaka"},"type":"pool.create"}',
    );
    expect(canonicalJson(reordered)).toBe(canonicalJson(order));
    expect(canonicalJson({ b: 1, a: [3, { d: 1, c: 2 }] })).toBe('{"a":[3,{"c":2,"d":1}],"b":1}');
  });

  it('keeps the order of arrays and leaves out undefined members as JSON does', () => {
    expect(canonicalJson([2, 1])).not.toBe(canonicalJson([1, 2]));
    expect(canonicalJson({ a: 1, b: undefined })).toBe(canonicalJson({ a: 1 }));
    expect(canonicalJson([undefined])).toBe(JSON.stringify([undefined]));
    expect(canonicalJson('x"y')).toBe(JSON.stringify('x"y'));
  });
});

describe('fingerprint', () => {
  it('is the same for the same request however its body is written', () => {
    const rewritten = { pool: { ...order.pool, nodes: { max: 2, min: 1 } }, type: 'pool.create' };
    expect(fingerprint({ ...base, body: rewritten }, key)).toBe(fingerprint(base, key));
    expect(fingerprint({ ...base, method: 'post' }, key)).toBe(fingerprint(base, key));
  });

  it.each<[string, Partial<FingerprintInput>]>([
    ['method', { method: 'PUT' }],
    ['path', { path: '/v1/proxy-users' }],
    ['query', { path: '/v1/orders?dry=1' }],
    ['tenant', { tenantId: '7d3c2a10-1111-4a2b-8c3d-0e9f8a7b6c5e' }],
    ['body', { body: { ...order, pool: { ...order.pool, name: 'kyoto' } } }],
    ['secret in the body', { body: { ...order, pool: { ...order.pool, secretEnv: { DB_PASSWORD: 'hunter3-correct-horse' } } } }],
    ['no body', { body: undefined }],
    ['an empty string body', { body: '' }],
  ])('differs when the %s differs', (_, change) => {
    expect(fingerprint({ ...base, ...change }, key)).not.toBe(fingerprint(base, key));
    expect(fingerprint({ ...base, ...change })).not.toBe(fingerprint(base));
  });

  it('keeps the parts apart: moving a boundary between them is another request', () => {
    const a = fingerprint({ method: 'POST', path: '/v1/a', tenantId: 'bc', body: undefined });
    const b = fingerprint({ method: 'POST', path: '/v1/ab', tenantId: 'c', body: undefined });
    expect(a).not.toBe(b);
  });

  it('is a digest that holds nothing of the body, keyed by SECRETS_KEY when there is one', () => {
    const keyed = fingerprint(base, key);
    const plain = fingerprint(base);
    expect(keyed).toMatch(/^hmac:[0-9a-f]{64}$/);
    expect(plain).toMatch(/^sha256:[0-9a-f]{64}$/);
    for (const fp of [keyed, plain]) {
      expect(fp).not.toContain('hunter2');
      expect(fp).not.toContain('osaka');
    }
    // Another deployment's key gives another fingerprint: without the key a stored one cannot test guesses.
    expect(fingerprint(base, fingerprintKey(randomBytes(32)))).not.toBe(keyed);
    expect(fingerprint(base, key)).toBe(keyed);
  });

  it('derives the same fingerprint key from the same SECRETS_KEY, never the SECRETS_KEY itself', () => {
    const secretsKey = randomBytes(32);
    expect(fingerprintKey(secretsKey).equals(fingerprintKey(Buffer.from(secretsKey)))).toBe(true);
    expect(fingerprintKey(secretsKey).equals(secretsKey)).toBe(false);
    expect(fingerprintKey(secretsKey)).toHaveLength(32);
  });
});
