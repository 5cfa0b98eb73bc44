import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

const VERSION = 'v1:';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;

/** A key that is not a key, or a value that this key did not seal (or that was changed since). */
export class SecretsError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'SecretsError';
  }
}

/**
 * Reads a key as operators write it (`openssl rand -base64 32`): standard or URL-safe base64
 * of exactly 32 bytes. The message never repeats the value.
 */
export function parseSecretsKey(base64: string): Buffer {
  const text = base64.trim();
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(text)) throw new SecretsError(`expected base64 of ${KEY_BYTES} bytes (e.g. openssl rand -base64 32), got characters that are not base64`);
  const key = Buffer.from(text, 'base64');
  if (key.length !== KEY_BYTES) throw new SecretsError(`expected base64 of ${KEY_BYTES} bytes (e.g. openssl rand -base64 32), got ${key.length} bytes`);
  return key;
}

function checkKey(key: Buffer): void {
  if (key.length !== KEY_BYTES) throw new SecretsError(`the key must be ${KEY_BYTES} bytes, not ${key.length}`);
}

export function isSealed(value: string): boolean {
  return value.startsWith(VERSION);
}

/**
 * AES-256-GCM with a fresh random IV per value: the same plaintext seals differently every
 * time, so ciphertexts say nothing about which values are equal. The tag makes any change to
 * the stored text (or opening with another key) an error, never a wrong plaintext.
 */
export function seal(plaintext: string, key: Buffer): string {
  checkKey(key);
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return VERSION + Buffer.concat([iv, cipher.getAuthTag(), ct]).toString('base64url');
}

export function open(sealed: string, key: Buffer): string {
  checkKey(key);
  if (!isSealed(sealed)) throw new SecretsError(`not a sealed value (expected "${VERSION}…")`);
  const raw = Buffer.from(sealed.slice(VERSION.length), 'base64url');
  if (raw.length < IV_BYTES + TAG_BYTES) throw new SecretsError('sealed value too short: truncated or not sealed by this library');
  const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, IV_BYTES));
  decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
  try {
    return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
  } catch (err) {
    throw new SecretsError('cannot open the sealed value: it was sealed with another key (is SECRETS_KEY the same on every service?) or it was changed', { cause: err });
  }
}
