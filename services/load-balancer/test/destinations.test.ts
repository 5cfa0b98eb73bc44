import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseNetworks } from '@switchyard/config';
import { DEFAULT_DENIED_NETWORKS, destinationPolicy, isValidHost } from '../src/destinations.js';

describe('destination policy', () => {
  const policy = destinationPolicy();

  it('refuses IP literals that lead back into the host, its LAN or Docker', () => {
    for (const host of [
      '127.0.0.1',
      '127.8.9.10',
      '10.0.0.1',
      '172.17.0.1',
      '172.31.255.255',
      '192.168.1.1',
      '169.254.169.254',
      '100.100.100.100',
      '0.0.0.0',
      '224.0.0.1',
      '255.255.255.255',
      '::1',
      '::',
      'fe80::1',
      'fd00::1',
      'fc00::abcd',
      '::ffff:127.0.0.1',
      '::ffff:7f00:1',
      '0:0:0:0:0:ffff:a00:1', // 10.0.0.1, as the SOCKS5 parser spells a 16-byte address
      '::ffff:169.254.169.254',
    ]) {
      expect(policy.allows(host), host).toBe(false);
    }
  });

  it('lets public addresses and host names through (names are judged by the node after resolving)', () => {
    for (const host of ['93.184.216.34', '172.32.0.1', '11.0.0.1', '2606:4700::1111', '::ffff:8.8.8.8', 'example.com', 'localhost']) {
      expect(policy.allows(host), host).toBe(true);
    }
  });

  it('adds LB_DENIED_NETWORKS to the defaults; LB_ALLOWED_NETWORKS exempts from the defaults only', () => {
    const p = destinationPolicy({ denied: '8.8.8.0/24, 2001:db8::/32, 10.1.0.0/16', allowed: '127.0.0.1/32,10.0.0.0/8' });
    expect(p.allows('8.8.8.8')).toBe(false);
    expect(p.allows('2001:db8::5')).toBe(false);
    expect(p.allows('127.0.0.1')).toBe(true);
    expect(p.allows('::ffff:127.0.0.1')).toBe(true);
    expect(p.allows('127.0.0.2')).toBe(false);
    expect(p.allows('10.2.0.1')).toBe(true);
    // An explicit deny beats an explicit allow.
    expect(p.allows('10.1.2.3')).toBe(false);
  });

  it('is the list the exit-node image applies after resolving a name', () => {
    const image = readFileSync(new URL('../../../infra/images/exit-node/server.mjs', import.meta.url), 'utf8');
    const list = /const DENIED_NETWORKS = \[([^\]]*)\]/.exec(image)?.[1];
    expect([...(list ?? '').matchAll(/'([^']+)'/g)].map((m) => m[1])).toEqual([...DEFAULT_DENIED_NETWORKS]);
  });

  it('parses networks strictly and names the bad entry', () => {
    expect(parseNetworks('').check('127.0.0.1')).toBe(false);
    expect(parseNetworks('192.0.2.7').check('192.0.2.7')).toBe(true);
    for (const bad of ['10.0.0.0/33', 'fe80::/129', 'example.com/8', '10.0.0.0/8/1', '10.0.0/8', '10.0.0.0/x']) {
      expect(() => parseNetworks(bad), bad).toThrow(bad);
    }
  });
});

describe('isValidHost', () => {
  it('accepts DNS names and IP literals', () => {
    for (const host of ['example.com', 'a-b.example.co.uk', '_srv.example.com', 'localhost', 'example.com.', 'xn--bcher-kva.example', '127.0.0.1', '::1', 'fe80::1']) {
      expect(isValidHost(host), host).toBe(true);
    }
  });

  it('refuses bytes that would change the CONNECT line, and numeric names resolvers read as addresses', () => {
    for (const host of [
      'evil.com\r\nX-Injected: 1',
      'a b',
      'a/b',
      'a@b',
      'a:b',
      '',
      '-a.com',
      'a-.com',
      'a..com',
      'é.com',
      'a\u0000b',
      '127.1',
      '0x7f.1',
      '2130706433',
      '0177.0.0.1',
      '127.0.0.1.',
      `${'a'.repeat(64)}.com`,
      `${'a.'.repeat(127)}com`,
    ]) {
      expect(isValidHost(host), JSON.stringify(host)).toBe(false);
    }
  });
});
