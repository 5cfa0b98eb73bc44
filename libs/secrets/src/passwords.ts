// Passwords a service stores only as a hash (proxy users): the gateway hashes, every load
// balancer worker verifies. One key derivation on both sides, so the hash contract
// (ProxyUserHash in the contracts) cannot drift between them.
import { createHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

export interface ScryptCost {
  readonly n: number;
  readonly r: number;
  readonly p: number;
}

/** Node's defaults (16 MiB, ~50 ms here): with generated passwords the cost guards only a leaked table. */
export const SCRYPT_COST: ScryptCost = Object.freeze({ n: 16_384, r: 8, p: 1 });
export const SCRYPT_KEY_LENGTH = 32;
const SALT_BYTES = 16;

/** scrypt runs on libuv's thread pool: the event loop keeps moving bytes meanwhile. */
export function deriveScrypt(password: string, salt: Buffer, cost: ScryptCost, length = SCRYPT_KEY_LENGTH): Promise<Buffer> {
  return new Promise((resolve, reject) => scrypt(password, salt, length, { N: cost.n, r: cost.r, p: cost.p }, (err, key) => (err ? reject(err) : resolve(key))));
}

/** A fresh salt and the password's key under SCRYPT_COST, both base64. */
export async function hashPassword(password: string): Promise<ScryptCost & { salt: string; hash: string }> {
  const salt = randomBytes(SALT_BYTES);
  const key = await deriveScrypt(password, salt, SCRYPT_COST);
  return { ...SCRYPT_COST, salt: salt.toString('base64'), hash: key.toString('base64') };
}

const sha256 = (s: string) => createHash('sha256').update(s).digest();

/** Constant-time whatever the lengths: both sides are hashed to 32 bytes first. */
export function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(sha256(a), sha256(b));
}
