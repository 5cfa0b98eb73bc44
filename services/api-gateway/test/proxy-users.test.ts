import { describe, expect, it } from 'vitest';
import { PROXY_USER_NAME } from '@switchyard/contracts';
import { deriveScrypt, SCRYPT_COST } from '@switchyard/secrets';
import { generateProxyPassword, hashProxyPassword, proxyUserNameIssue } from '../src/proxy-users.js';

describe('proxy user passwords', () => {
  it('are 192 random bits, different every time', () => {
    const a = generateProxyPassword();
    expect(a).toMatch(/^pu_[A-Za-z0-9_-]{32}$/);
    expect(generateProxyPassword()).not.toBe(a);
  });

  it('are stored as a salted scrypt hash that recomputes from the password only', async () => {
    const password = generateProxyPassword();
    const h = await hashProxyPassword(password);
    expect(h).toMatchObject({ algorithm: 'scrypt', ...SCRYPT_COST });
    expect(JSON.stringify(h)).not.toContain(password);
    const salt = Buffer.from(h.salt, 'base64');
    expect(salt).toHaveLength(16);
    expect((await deriveScrypt(password, salt, h)).toString('base64')).toBe(h.hash);
    expect((await deriveScrypt(`${password}x`, salt, h)).toString('base64')).not.toBe(h.hash);
    // A per-user salt: the same password hashes differently.
    expect((await hashProxyPassword(password)).hash).not.toBe(h.hash);
  });
});

describe('proxy user names', () => {
  it('take one token of the proxy username grammar', () => {
    for (const ok of ['alice', 'shop_1', '9lives', 'a', 'x'.repeat(32), 'countries', 'my_session']) {
      expect(proxyUserNameIssue(ok), ok).toBeUndefined();
      expect(PROXY_USER_NAME.test(ok)).toBe(true);
    }
  });

  it('refuse dashes, keywords, capitals and other characters, saying why', () => {
    expect(proxyUserNameIssue('shop-1')).toMatch(/"-"/);
    for (const keyword of ['country', 'region', 'session']) expect(proxyUserNameIssue(keyword)).toMatch(/keyword/);
    for (const bad of ['', 'Alice', '_lead', 'a:b', 'a b', 'é', 'x'.repeat(33), 'a@t']) {
      expect(proxyUserNameIssue(bad), bad).toMatch(/lower-case letters, digits and underscores/);
      expect(PROXY_USER_NAME.test(bad)).toBe(false);
    }
  });
});
