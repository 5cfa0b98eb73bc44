import type { Socket } from 'node:net';
import {
  httpError,
  parseGreeting,
  parseProxyRequest,
  parseSocksRequest,
  parseUsername,
  parseUserPass,
  ProtocolError,
  SOCKS,
  socksReply,
  type Credentials,
  type ProxyRequest,
  type Routing,
  type Target,
} from '../protocol.js';
import type { Client, Route } from '../router.js';
import { forwardRequest } from './absolute-form.js';
import { type AclRefusal, admitRoute, clientAddress } from './acl.js';
import { Inbox } from './inbox.js';
import type { DataPlane } from './plane.js';
import { dialForClient, spliceToNode } from './upstream.js';

const CONNECT_OK = Buffer.from('HTTP/1.1 200 Connection Established\r\n\r\n');

interface Scope {
  readonly tenantId: string | undefined;
  /** The authenticated proxy user (an ACL policy's identity); absent when the proxy is open. */
  readonly user?: string;
}

/** Checks credentials when any are configured; without any every request is refused, or unscoped when the proxy is open. */
async function authenticate(dp: DataPlane, sock: Socket, creds: Credentials | undefined, routing: Routing | undefined): Promise<Scope | undefined> {
  if (!dp.credentials.configured()) return dp.config.openProxy ? { tenantId: undefined } : undefined;
  if (!creds || !routing) return undefined;
  const tenantId = await dp.credentials.verify(routing.user, creds.password, sock.remoteAddress ?? '');
  return tenantId === undefined ? undefined : { tenantId, user: routing.user };
}

/**
 * A request that names no country (main port, no `country-` in the username) may leave
 * anywhere. Each candidate pool's tenant policy judges the client for the target's port.
 */
function routeFor(dp: DataPlane, sock: Socket, listenerCountry: string | undefined, routing: Routing | undefined, scope: Scope, target: Target, where: string): Route | AclRefusal {
  const route = dp.router.exitRoute(routing?.country ?? listenerCountry, scope.tenantId);
  return admitRoute(dp.acl, route, { user: scope.user, address: clientAddress(sock.remoteAddress) }, target.port, where);
}

const clientOf = (sock: Socket, routing: Routing | undefined): Client => ({ address: sock.remoteAddress, region: routing?.region, session: routing?.session });

/** Open connections per client address, per data plane (one per worker process). */
const openByClient = new WeakMap<DataPlane, Map<string, number>>();

/** Counts the connection against its address's cap; false (and dropped) when over it. */
function admit(dp: DataPlane, sock: Socket): boolean {
  let open = openByClient.get(dp);
  if (!open) openByClient.set(dp, (open = new Map()));
  const address = sock.remoteAddress ?? '';
  const n = open.get(address) ?? 0;
  if (n >= dp.config.maxConnectionsPerClient) {
    dp.counters.reject('limit');
    sock.destroy();
    return false;
  }
  open.set(address, n + 1);
  sock.once('close', () => {
    const left = open.get(address)! - 1;
    if (left === 0) open.delete(address);
    else open.set(address, left);
  });
  return true;
}

/** One client of a proxy port: SOCKS5 if the first byte is 5, an HTTP proxy request otherwise. */
export function acceptProxyClient(dp: DataPlane, sock: Socket, listenerCountry: string | undefined): void {
  sock.on('error', () => undefined);
  if (!admit(dp, sock)) return;
  const timer = setTimeout(() => sock.destroy(), dp.config.handshakeTimeoutMs);
  // Once the request is read, the client waits on us: dialling has its own bounds.
  const disarm = () => clearTimeout(timer);
  const inbox = new Inbox(sock, dp.config.maxBufferedBytes);
  const run = async () => {
    const first = await inbox.next((b) => (b.length > 0 ? { value: b[0]!, consumed: 0 } : null));
    if (first === SOCKS.VERSION) await socks5(dp, sock, inbox, listenerCountry, disarm);
    else await httpProxy(dp, sock, inbox, listenerCountry, disarm);
  };
  run()
    .catch(() => sock.destroy())
    .finally(() => clearTimeout(timer));
}

async function socks5(dp: DataPlane, sock: Socket, inbox: Inbox, listenerCountry: string | undefined, disarm: () => void): Promise<void> {
  let methods: Set<number>;
  try {
    methods = await inbox.next(parseGreeting);
  } catch (err) {
    if (err instanceof ProtocolError) {
      dp.counters.reject('malformed');
      sock.end(Buffer.from([SOCKS.VERSION, SOCKS.NO_METHOD]));
      return;
    }
    throw err;
  }
  // Username/password whenever offered: without users configured it still carries the routing.
  const method = methods.has(SOCKS.USER_PASS)
    ? SOCKS.USER_PASS
    : !dp.credentials.configured() && dp.config.openProxy && methods.has(SOCKS.NO_AUTH)
      ? SOCKS.NO_AUTH
      : SOCKS.NO_METHOD;
  if (method === SOCKS.NO_METHOD) {
    dp.counters.reject('auth');
    sock.end(Buffer.from([SOCKS.VERSION, SOCKS.NO_METHOD]));
    return;
  }
  sock.write(Buffer.from([SOCKS.VERSION, method]));
  let creds: Credentials | undefined;
  let routing: Routing | undefined;
  let scope: Scope | undefined = { tenantId: undefined };
  if (method === SOCKS.USER_PASS) {
    try {
      creds = await inbox.next(parseUserPass);
      routing = parseUsername(creds.username);
      scope = await authenticate(dp, sock, creds, routing);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      scope = undefined;
    }
    if (!scope) {
      dp.counters.reject('auth');
      sock.end(Buffer.from([0x01, 0x01]));
      return;
    }
    sock.write(Buffer.from([0x01, 0x00]));
  }
  let target: Target;
  try {
    target = await inbox.next(parseSocksRequest);
  } catch (err) {
    if (err instanceof ProtocolError) {
      dp.counters.reject('malformed');
      sock.end(socksReply(err.code));
      return;
    }
    throw err;
  }
  if (!dp.config.destinations.allows(target.host)) {
    dp.counters.reject('denied');
    sock.end(socksReply(SOCKS.REP_NOT_ALLOWED));
    return;
  }
  const route = routeFor(dp, sock, listenerCountry, routing, scope, target, 'socks5');
  if (typeof route === 'string') {
    dp.counters.reject(route === 'denied' ? 'denied' : 'unavailable');
    sock.end(socksReply(route === 'denied' ? SOCKS.REP_NOT_ALLOWED : SOCKS.REP_GENERAL_FAILURE));
    return;
  }
  disarm();
  const dialed = await dialForClient(dp, sock, route, clientOf(sock, routing), target, (err) => socksReply(err.socks));
  if (!dialed) return;
  const early = inbox.release();
  sock.write(socksReply(SOCKS.REP_SUCCESS));
  spliceToNode(sock, dialed, early, dp.config.halfCloseTimeoutMs, dp.config.idleTimeoutMs);
}

async function httpProxy(dp: DataPlane, sock: Socket, inbox: Inbox, listenerCountry: string | undefined, disarm: () => void): Promise<void> {
  let routing: Routing | undefined;
  let scope: Scope | undefined;
  let req: ProxyRequest;
  try {
    req = await inbox.next((b) => {
      const r = parseProxyRequest(b);
      return r && { value: r, consumed: r.consumed };
    });
    routing = req.credentials ? parseUsername(req.credentials.username) : undefined;
    scope = await authenticate(dp, sock, req.credentials, routing);
  } catch (err) {
    if (err instanceof ProtocolError) {
      dp.counters.reject('malformed');
      sock.end(httpError(err.code, err.message));
      return;
    }
    throw err;
  }
  if (!scope) {
    dp.counters.reject('auth');
    sock.end(httpError(407, 'proxy authentication required'));
    return;
  }
  if (!dp.config.destinations.allows(req.target.host)) {
    dp.counters.reject('denied');
    sock.end(httpError(403, `${req.target.host} is not an allowed destination`));
    return;
  }
  const route = routeFor(dp, sock, listenerCountry, routing, scope, req.target, req.connect ? 'http-connect' : 'http-forward');
  if (typeof route === 'string') {
    dp.counters.reject(route === 'denied' ? 'denied' : 'unavailable');
    sock.end(route === 'denied' ? httpError(403, 'the ACL policy does not allow this connection') : httpError(503, 'the ACL policies are not loaded yet'));
    return;
  }
  disarm();
  const client = clientOf(sock, routing);
  const dialed = await dialForClient(dp, sock, route, client, req.connect ? req.target : undefined, (err) => httpError(err.status, err.message));
  if (!dialed) return;
  const early = inbox.release();
  if (req.connect) {
    sock.write(CONNECT_OK);
    spliceToNode(sock, dialed, early, dp.config.halfCloseTimeoutMs, dp.config.idleTimeoutMs);
  } else {
    await forwardRequest(dp, sock, route, client, req.head, early, dialed);
  }
}
