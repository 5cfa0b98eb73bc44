/**
 * Pure parsers of what a client sends before its bytes are piped: the SOCKS5 greeting,
 * RFC 1929 credentials and request, an HTTP proxy request head, and the routing username.
 * Each takes the bytes received so far and answers "need more", a result, or an error.
 */

import { isValidHost } from './destinations.js';

const NEED_MORE = null;

export class ProtocolError extends Error {
  override name = 'ProtocolError';
  constructor(
    message: string,
    /** SOCKS5 reply code or HTTP status that answers it. */
    readonly code: number,
  ) {
    super(message);
  }
}

// ---- SOCKS5 (RFC 1928) and username/password (RFC 1929) ----

export const SOCKS = {
  VERSION: 0x05,
  NO_AUTH: 0x00,
  USER_PASS: 0x02,
  NO_METHOD: 0xff,
  CMD_CONNECT: 0x01,
  ATYP_IPV4: 0x01,
  ATYP_DOMAIN: 0x03,
  ATYP_IPV6: 0x04,
  REP_SUCCESS: 0x00,
  REP_GENERAL_FAILURE: 0x01,
  REP_NOT_ALLOWED: 0x02,
  REP_HOST_UNREACHABLE: 0x04,
  REP_CONNECTION_REFUSED: 0x05,
  REP_TTL_EXPIRED: 0x06,
  REP_COMMAND_NOT_SUPPORTED: 0x07,
  REP_ATYP_NOT_SUPPORTED: 0x08,
} as const;

export interface Parsed<T> {
  readonly value: T;
  /** Bytes of the input the value used; the rest belongs to the next step. */
  readonly consumed: number;
}

/** VER NMETHODS METHODS… → the offered methods. */
export function parseGreeting(buf: Buffer): Parsed<Set<number>> | null {
  if (buf.length < 2) return NEED_MORE;
  if (buf[0] !== SOCKS.VERSION) throw new ProtocolError('not SOCKS version 5', SOCKS.NO_METHOD);
  const n = buf[1]!;
  if (n === 0) throw new ProtocolError('SOCKS5 greeting offers no method', SOCKS.NO_METHOD);
  if (buf.length < 2 + n) return NEED_MORE;
  const methods = new Set<number>();
  for (let i = 0; i < n; i++) methods.add(buf[2 + i]!);
  return { value: methods, consumed: 2 + n };
}

export interface Credentials {
  readonly username: string;
  readonly password: string;
}

/** RFC 1929: VER(1) ULEN UNAME PLEN PASSWD. */
export function parseUserPass(buf: Buffer): Parsed<Credentials> | null {
  if (buf.length < 2) return NEED_MORE;
  if (buf[0] !== 0x01) throw new ProtocolError('username/password sub-negotiation is not version 1', 0x01);
  const ulen = buf[1]!;
  if (buf.length < 3 + ulen) return NEED_MORE;
  const plen = buf[2 + ulen]!;
  if (buf.length < 3 + ulen + plen) return NEED_MORE;
  return {
    value: { username: buf.toString('utf8', 2, 2 + ulen), password: buf.toString('utf8', 3 + ulen, 3 + ulen + plen) },
    consumed: 3 + ulen + plen,
  };
}

export interface Target {
  readonly host: string;
  readonly port: number;
}

/** VER CMD RSV ATYP DST.ADDR DST.PORT; only CONNECT is supported. */
export function parseSocksRequest(buf: Buffer): Parsed<Target> | null {
  if (buf.length < 5) return NEED_MORE;
  if (buf[0] !== SOCKS.VERSION) throw new ProtocolError('SOCKS5 request is not version 5', SOCKS.REP_GENERAL_FAILURE);
  if (buf[1] !== SOCKS.CMD_CONNECT) throw new ProtocolError(`SOCKS5 command ${buf[1]} is not supported`, SOCKS.REP_COMMAND_NOT_SUPPORTED);
  let host: string;
  let at: number;
  switch (buf[3]) {
    case SOCKS.ATYP_IPV4:
      if (buf.length < 10) return NEED_MORE;
      host = `${buf[4]}.${buf[5]}.${buf[6]}.${buf[7]}`;
      at = 8;
      break;
    case SOCKS.ATYP_DOMAIN: {
      const len = buf[4]!;
      if (len === 0) throw new ProtocolError('SOCKS5 request has an empty host name', SOCKS.REP_GENERAL_FAILURE);
      if (buf.length < 5 + len + 2) return NEED_MORE;
      host = buf.toString('latin1', 5, 5 + len);
      // The name goes into the CONNECT line sent to the node: CR/LF here would add lines to it.
      if (!isValidHost(host)) throw new ProtocolError('SOCKS5 request names an invalid host name', SOCKS.REP_GENERAL_FAILURE);
      at = 5 + len;
      break;
    }
    case SOCKS.ATYP_IPV6: {
      if (buf.length < 22) return NEED_MORE;
      const groups: string[] = [];
      for (let i = 0; i < 8; i++) groups.push(buf.readUInt16BE(4 + i * 2).toString(16));
      host = groups.join(':');
      at = 20;
      break;
    }
    default:
      throw new ProtocolError(`SOCKS5 address type ${buf[3]} is not supported`, SOCKS.REP_ATYP_NOT_SUPPORTED);
  }
  const port = buf.readUInt16BE(at);
  if (port === 0) throw new ProtocolError('SOCKS5 request names port 0', SOCKS.REP_GENERAL_FAILURE);
  return { value: { host, port }, consumed: at + 2 };
}

/** A SOCKS5 reply with a zero bound address (clients ignore it for CONNECT). */
export function socksReply(code: number): Buffer {
  return Buffer.from([SOCKS.VERSION, code, 0x00, SOCKS.ATYP_IPV4, 0, 0, 0, 0, 0, 0]);
}

// ---- HTTP proxy requests ----

export interface ProxyRequest {
  /** CONNECT tunnels; anything else is an absolute-form request forwarded as is. */
  readonly connect: boolean;
  readonly target: Target;
  /** Decoded `Proxy-Authorization: Basic`, if present. */
  readonly credentials: Credentials | undefined;
  /**
   * The head to send on for absolute-form requests: without Proxy-Authorization, and with
   * `Connection: close` so the node ends the connection after one answer. Later requests on a
   * keep-alive client connection would otherwise reach the node raw, credentials and all.
   */
  readonly head: string;
  readonly consumed: number;
}

const MAX_HEAD = 16 * 1024;
const HEAD_END = Buffer.from('\r\n\r\n');
const AUTHORITY = /^(\[[0-9A-Fa-f:.]+\]|[^\s:/[\]@]+):(\d{1,5})$/;

function parseAuthority(authority: string, defaultPort?: number): Target | undefined {
  const m = AUTHORITY.exec(authority);
  let target: Target | undefined;
  if (m) {
    const port = Number(m[2]);
    if (port >= 1 && port <= 65535) target = { host: m[1]!.replace(/^\[|\]$/g, ''), port };
  } else if (defaultPort !== undefined && /^[^\s:/[\]@]+$/.test(authority)) target = { host: authority, port: defaultPort };
  return target && isValidHost(target.host) ? target : undefined;
}

export function decodeBasic(value: string): Credentials | undefined {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(value);
  if (!m) return undefined;
  const text = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon < 0) return undefined;
  return { username: text.slice(0, colon), password: text.slice(colon + 1) };
}

/** Parses a request head once it is complete; 400 for anything a proxy cannot route. */
export function parseProxyRequest(buf: Buffer): ProxyRequest | null {
  const end = buf.indexOf(HEAD_END);
  if (end < 0) {
    if (buf.length > MAX_HEAD) throw new ProtocolError('request head too large', 431);
    return NEED_MORE;
  }
  if (end > MAX_HEAD) throw new ProtocolError('request head too large', 431);
  const text = buf.toString('latin1', 0, end);
  const lines = text.split('\r\n');
  const requestLine = /^([A-Z]+) (\S+) HTTP\/1\.[01]$/.exec(lines[0]!);
  if (!requestLine) throw new ProtocolError('malformed request line', 400);
  const method = requestLine[1]!;
  const uri = requestLine[2]!;
  let credentials: Credentials | undefined;
  const kept: string[] = [lines[0]!];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new ProtocolError('malformed header line', 400);
    const name = line.slice(0, colon).toLowerCase();
    if (name === 'proxy-authorization') {
      credentials = decodeBasic(line.slice(colon + 1).trim());
      if (!credentials) throw new ProtocolError('Proxy-Authorization is not Basic credentials', 400);
    } else if (name !== 'connection' && name !== 'proxy-connection') {
      kept.push(line);
    }
  }
  let target: Target | undefined;
  if (method === 'CONNECT') {
    target = parseAuthority(uri);
    if (!target) throw new ProtocolError('CONNECT needs host:port', 400);
  } else {
    if (!uri.startsWith('http://')) throw new ProtocolError('absolute-form http:// URL required (use CONNECT for TLS)', 400);
    const slash = uri.indexOf('/', 7);
    target = parseAuthority(uri.slice(7, slash < 0 ? undefined : slash), 80);
    if (!target) throw new ProtocolError('URL has no valid host', 400);
  }
  return { connect: method === 'CONNECT', target, credentials, head: `${kept.join('\r\n')}\r\nConnection: close\r\n\r\n`, consumed: end + 4 };
}

/** The status code of a complete HTTP response head, or null while it is incomplete. */
export function parseResponseHead(buf: Buffer): Parsed<number> | null {
  const end = buf.indexOf(HEAD_END);
  if (end < 0) {
    if (buf.length > MAX_HEAD) throw new ProtocolError('response head too large', 502);
    return NEED_MORE;
  }
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(buf.toString('latin1', 0, Math.min(end, 64)));
  if (!m) throw new ProtocolError('malformed response from node', 502);
  return { value: Number(m[1]), consumed: end + 4 };
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  407: 'Proxy Authentication Required',
  431: 'Request Header Fields Too Large',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

export function httpError(status: number, message: string): string {
  const body = `${message}\n`;
  const auth = status === 407 ? 'Proxy-Authenticate: Basic realm="switchyard"\r\n' : '';
  return `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\n${auth}Content-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

// ---- routing username ----

export interface Routing {
  /** The part before the first keyword: the credential's user name. */
  readonly user: string;
  readonly country: string | undefined;
  readonly region: string | undefined;
  readonly session: string | undefined;
}

const KEYWORDS = new Set(['country', 'region', 'session']);

/**
 * `[<user>-]country-jp[-region-<r>][-session-<id>]`, keywords in any order; a region may
 * contain dashes ("region-eu-west"). A name without keywords is all user.
 */
export function parseUsername(name: string): Routing {
  const tokens = name.split('-');
  const user: string[] = [];
  const found: Record<string, string[]> = {};
  let current: string[] | undefined;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    const key = t.toLowerCase();
    if (KEYWORDS.has(key) && i + 1 < tokens.length && !found[key]) {
      current = found[key] = [];
      continue;
    }
    (current ?? user).push(t);
  }
  const value = (k: string) => (found[k]?.length ? found[k]!.join('-') : undefined);
  const country = value('country');
  if (country !== undefined && !/^[A-Za-z]{2}$/.test(country)) throw new ProtocolError(`"${country}" is not a country code`, 400);
  return { user: user.join('-'), country: country?.toUpperCase(), region: value('region'), session: value('session') };
}
