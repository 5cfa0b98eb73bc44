import { createHash, createHmac, hkdfSync } from 'node:crypto';

/**
 * JSON with every object's keys sorted, no whitespace: the same request however its client
 * wrote it. `undefined` members are left out as JSON.stringify leaves them out.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  const members = Object.keys(value)
    .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
  return `{${members.join(',')}}`;
}

export interface FingerprintInput {
  method: string;
  /** The path as requested, query included: another path is another request. */
  path: string;
  tenantId: string;
  /** The parsed body; absent for a request without one. */
  body: unknown;
}

/**
 * The key under which fingerprints are keyed, derived from SECRETS_KEY so every gateway of a
 * deployment computes the same one. Keyed, a stored fingerprint cannot be used to test
 * guesses of a secret in the body (a pool's secretEnv) without the key.
 */
export function fingerprintKey(secretsKey: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', secretsKey, Buffer.alloc(0), 'switchyard idempotency fingerprint v1', 32));
}

/**
 * What makes two requests "the same" for an Idempotency-Key: method, path, tenant and the
 * canonical body. Only this hash is stored, never the body: bodies may carry secrets. Each
 * part is length-prefixed, so no two different inputs share a preimage.
 */
export function fingerprint(input: FingerprintInput, key?: Buffer): string {
  const parts = [input.method.toUpperCase(), input.path, input.tenantId, input.body === undefined ? '' : canonicalJson(input.body)];
  const hash = key ? createHmac('sha256', key) : createHash('sha256');
  for (const part of parts) {
    const bytes = Buffer.from(part, 'utf8');
    hash.update(`${bytes.length}:`);
    hash.update(bytes);
  }
  return `${key ? 'hmac' : 'sha256'}:${hash.digest('hex')}`;
}
