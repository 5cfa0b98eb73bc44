import { describe, expect, it } from 'vitest';
import {
  decodeBasic,
  parseGreeting,
  parseProxyRequest,
  parseResponseHead,
  parseSocksRequest,
  parseUsername,
  parseUserPass,
  ProtocolError,
  SOCKS,
  socksReply,
} from '../src/protocol.js';

const b = (...bytes: number[]) => Buffer.from(bytes);

describe('SOCKS5 greeting', () => {
  it('waits for all offered methods, then lists them', () => {
    expect(parseGreeting(b(5))).toBeNull();
    expect(parseGreeting(b(5, 2, 0))).toBeNull();
    expect(parseGreeting(b(5, 2, 0, 2, 9))).toEqual({ value: new Set([0, 2]), consumed: 4 });
  });
  it('refuses another version and an empty method list', () => {
    expect(() => parseGreeting(b(4, 1, 0))).toThrow(ProtocolError);
    expect(() => parseGreeting(b(5, 0))).toThrow(/no method/);
  });
});

describe('RFC 1929 username/password', () => {
  it('reads user and password once complete', () => {
    const msg = Buffer.concat([b(1, 5), Buffer.from('alice'), b(6), Buffer.from('secret')]);
    expect(parseUserPass(msg.subarray(0, 8))).toBeNull();
    expect(parseUserPass(msg)).toEqual({ value: { username: 'alice', password: 'secret' }, consumed: msg.length });
  });
  it('refuses a sub-negotiation version other than 1', () => {
    expect(() => parseUserPass(b(5, 1, 0x61, 0))).toThrow(ProtocolError);
  });
});

describe('SOCKS5 request', () => {
  it('reads IPv4, domain and IPv6 targets', () => {
    expect(parseSocksRequest(b(5, 1, 0, 1, 127, 0, 0, 1, 0x1f, 0x90))?.value).toEqual({ host: '127.0.0.1', port: 8080 });
    const name = Buffer.from('example.com');
    const domain = Buffer.concat([b(5, 1, 0, 3, name.length), name, b(0, 80)]);
    expect(parseSocksRequest(domain)).toEqual({ value: { host: 'example.com', port: 80 }, consumed: domain.length });
    expect(parseSocksRequest(domain.subarray(0, 9))).toBeNull();
    const v6 = b(5, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 187);
    expect(parseSocksRequest(v6)?.value).toEqual({ host: '0:0:0:0:0:0:0:1', port: 443 });
  });
  it('answers BIND and UDP ASSOCIATE with "command not supported" and unknown address types with 0x08', () => {
    expect(() => parseSocksRequest(b(5, 2, 0, 1, 1, 2, 3, 4, 0, 80))).toThrow(expect.objectContaining({ code: SOCKS.REP_COMMAND_NOT_SUPPORTED }));
    expect(() => parseSocksRequest(b(5, 3, 0, 1, 1, 2, 3, 4, 0, 80))).toThrow(expect.objectContaining({ code: 0x07 }));
    expect(() => parseSocksRequest(b(5, 1, 0, 9, 1, 2, 3, 4, 0, 80))).toThrow(expect.objectContaining({ code: SOCKS.REP_ATYP_NOT_SUPPORTED }));
  });
  it('replies with version, code and a zero bound address', () => {
    expect([...socksReply(0x04)]).toEqual([5, 4, 0, 1, 0, 0, 0, 0, 0, 0]);
  });
});

describe('HTTP proxy request', () => {
  it('waits for the whole head, then reads a CONNECT target and the Basic credentials', () => {
    const head = `CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\nProxy-Authorization: Basic ${Buffer.from('alice-country-jp:pw').toString('base64')}\r\n\r\n`;
    expect(parseProxyRequest(Buffer.from(head.slice(0, -2)))).toBeNull();
    const r = parseProxyRequest(Buffer.from(`${head}early`))!;
    expect(r.connect).toBe(true);
    expect(r.target).toEqual({ host: '127.0.0.1', port: 443 });
    expect(r.credentials).toEqual({ username: 'alice-country-jp', password: 'pw' });
    expect(r.consumed).toBe(head.length);
  });
  it('forwards an absolute-form request without our Proxy-Authorization, as the only request on its node connection', () => {
    const head =
      'GET http://example.com/x?y=1 HTTP/1.1\r\nHost: example.com\r\nProxy-Authorization: Basic YTpi\r\nProxy-Connection: keep-alive\r\nConnection: keep-alive\r\nAccept: */*\r\n\r\n';
    const r = parseProxyRequest(Buffer.from(head))!;
    expect(r.connect).toBe(false);
    expect(r.target).toEqual({ host: 'example.com', port: 80 });
    expect(r.head).toBe('GET http://example.com/x?y=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nConnection: close\r\n\r\n');
    expect(parseProxyRequest(Buffer.from('GET http://[::1]:8080/ HTTP/1.1\r\n\r\n'))!.target).toEqual({ host: '::1', port: 8080 });
  });
  it('answers what a proxy cannot route with 400 and a huge head with 431', () => {
    for (const bad of [
      'GET /relative HTTP/1.1\r\n\r\n',
      'CONNECT example.com HTTP/1.1\r\n\r\n',
      'CONNECT a:99999 HTTP/1.1\r\n\r\n',
      'garbage\r\n\r\n',
      'GET https://x/ HTTP/1.1\r\n\r\n',
      'GET http://x/ HTTP/1.1\r\nno colon\r\n\r\n',
    ]) {
      expect(() => parseProxyRequest(Buffer.from(bad)), bad).toThrow(expect.objectContaining({ code: 400 }));
    }
    expect(() => parseProxyRequest(Buffer.alloc(20_000, 0x41))).toThrow(expect.objectContaining({ code: 431 }));
  });
  it('reads the status of a node answer', () => {
    expect(parseResponseHead(Buffer.from('HTTP/1.1 200 Connection Established\r\n\r\nxy'))).toEqual({ value: 200, consumed: 39 });
    expect(parseResponseHead(Buffer.from('HTTP/1.1 502 Bad'))).toBeNull();
    expect(() => parseResponseHead(Buffer.from('SSH-2.0\r\n\r\n'))).toThrow(ProtocolError);
  });
  it('decodes Basic credentials and refuses other schemes', () => {
    expect(decodeBasic(`Basic ${Buffer.from('u:p:q').toString('base64')}`)).toEqual({ username: 'u', password: 'p:q' });
    expect(decodeBasic('Bearer abc')).toBeUndefined();
  });
});

describe('routing username', () => {
  it('reads country, region and session after an optional user', () => {
    expect(parseUsername('country-jp')).toEqual({ user: '', country: 'JP', region: undefined, session: undefined });
    expect(parseUsername('alice-country-us-region-eu-west-session-abc123')).toEqual({ user: 'alice', country: 'US', region: 'eu-west', session: 'abc123' });
    expect(parseUsername('country-jp-session-s1-region-tokyo')).toEqual({ user: '', country: 'JP', region: 'tokyo', session: 's1' });
    expect(parseUsername('bob')).toEqual({ user: 'bob', country: undefined, region: undefined, session: undefined });
  });
  it('refuses a country that is not two letters', () => {
    expect(() => parseUsername('country-japan')).toThrow(/not a country code/);
  });
});

describe('targets that would inject into the line sent to the node', () => {
  const socksDomain = (name: string) => Buffer.concat([b(5, 1, 0, 3, Buffer.byteLength(name, 'latin1')), Buffer.from(name, 'latin1'), b(0, 80)]);

  it('SOCKS5: a domain with CR/LF or other bytes outside a host name is a general failure', () => {
    expect(parseSocksRequest(socksDomain('example.com'))?.value).toEqual({ host: 'example.com', port: 80 });
    for (const name of ['evil.com:80 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nX: y', 'a\nb', 'a b', 'a/b', '127.1']) {
      let error: unknown;
      try {
        parseSocksRequest(socksDomain(name));
      } catch (err) {
        error = err;
      }
      expect(error, JSON.stringify(name)).toBeInstanceOf(ProtocolError);
      expect((error as ProtocolError).code).toBe(SOCKS.REP_GENERAL_FAILURE);
    }
  });

  it('HTTP: a CONNECT or absolute-form host that is not a host name is a 400', () => {
    for (const head of ['CONNECT ex%0d%0aample.com:443 HTTP/1.1', 'CONNECT 0x7f.1:80 HTTP/1.1', 'GET http://2130706433/ HTTP/1.1', 'GET http://a_b$c.com/ HTTP/1.1']) {
      expect(() => parseProxyRequest(Buffer.from(`${head}\r\nHost: x\r\n\r\n`)), head).toThrow(ProtocolError);
    }
    expect(parseProxyRequest(Buffer.from('CONNECT [::1]:443 HTTP/1.1\r\n\r\n'))?.target).toEqual({ host: '::1', port: 443 });
  });
});
