import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isSealed, open, parseSecretsKey, seal, SecretsError } from '../src/index.js';

const key = randomBytes(32);

describe('seal and open', () => {
  it('opens what it sealed, unicode and empty values included', () => {
    for (const plaintext of ['s3cret', '', 'ünïcødé 🔑', 'x'.repeat(4096)]) {
      const sealed = seal(plaintext, key);
      expect(sealed).toMatch(/^v1:[A-Za-z0-9_-]+$/);
      expect(isSealed(sealed)).toBe(true);
      expect(open(sealed, key)).toBe(plaintext);
    }
  });

  it('seals the same value differently each time and never shows it', () => {
    const a = seal('hunter2hunter2', key);
    const b = seal('hunter2hunter2', key);
    expect(a).not.toBe(b);
    expect(a).not.toContain('hunter2');
    expect(Buffer.from(a.slice(3), 'base64url').toString('latin1')).not.toContain('hunter2');
  });

  it('refuses another key with a clear error', () => {
    const sealed = seal('s3cret', key);
    expect(() => open(sealed, randomBytes(32))).toThrow(SecretsError);
    expect(() => open(sealed, randomBytes(32))).toThrow(/sealed with another key .*or it was changed/);
  });

  it('refuses a tampered value, whichever byte changed', () => {
    const sealed = seal('s3cret', key);
    const raw = Buffer.from(sealed.slice(3), 'base64url');
    for (let i = 0; i < raw.length; i++) {
      const changed = Buffer.from(raw);
      changed[i] = (changed[i]! ^ 0x01) & 0xff;
      expect(() => open(`v1:${changed.toString('base64url')}`, key)).toThrow(SecretsError);
    }
  });

  it('refuses values that are not sealed or are cut short', () => {
    expect(() => open('s3cret', key)).toThrow(/not a sealed value/);
    expect(() => open('v1:AAAA', key)).toThrow(/too short/);
    expect(isSealed('plain')).toBe(false);
  });

  it('refuses a key that is not 32 bytes', () => {
    expect(() => seal('x', randomBytes(16))).toThrow(/32 bytes/);
    expect(() => open(seal('x', key), randomBytes(31))).toThrow(/32 bytes/);
  });
});

describe('parseSecretsKey', () => {
  it('reads standard and URL-safe base64 of 32 bytes', () => {
    expect(parseSecretsKey(key.toString('base64')).equals(key)).toBe(true);
    expect(parseSecretsKey(key.toString('base64url')).equals(key)).toBe(true);
    expect(parseSecretsKey(`${key.toString('base64')}\n`).equals(key)).toBe(true);
  });

  it('names the problem without repeating the value', () => {
    const short = randomBytes(16).toString('base64');
    expect(() => parseSecretsKey(short)).toThrow('expected base64 of 32 bytes (e.g. openssl rand -base64 32), got 16 bytes');
    const err = (() => {
      try {
        parseSecretsKey('not base64! my-password');
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(SecretsError);
    expect((err as Error).message).not.toContain('my-password');
  });
});
