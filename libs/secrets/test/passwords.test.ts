import { describe, expect, it } from 'vitest';
import { deriveScrypt, hashPassword, sameSecret, SCRYPT_COST } from '../src/index.js';

describe('password hashes', () => {
  it('hash with a fresh salt under the stated cost, and derive the same key from the same password only', async () => {
    const h = await hashPassword('pu_correct horse');
    expect(h).toMatchObject(SCRYPT_COST);
    const salt = Buffer.from(h.salt, 'base64');
    expect(salt).toHaveLength(16);
    expect((await deriveScrypt('pu_correct horse', salt, h)).toString('base64')).toBe(h.hash);
    expect((await deriveScrypt('pu_correct horsE', salt, h)).toString('base64')).not.toBe(h.hash);
    expect((await hashPassword('pu_correct horse')).salt).not.toBe(h.salt);
  });

  it('compare secrets of any lengths', () => {
    expect(sameSecret('a', 'a')).toBe(true);
    expect(sameSecret('a', 'ab')).toBe(false);
    expect(sameSecret('', '')).toBe(true);
  });
});
