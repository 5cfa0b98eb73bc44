import { connect, type Socket } from 'node:net';
import type { TrafficCounters, RejectReason } from './counters.js';
import {
  httpError,
  parseGreeting,
  parseProxyRequest,
  parseResponseHead,
  parseSocksRequest,
  parseUsername,
  parseUserPass,
  ProtocolError,
  SOCKS,
  socksReply,
  type Credentials,
  type Parsed,
  type ProxyRequest,
  type Routing,
  type Target,
} from './protocol.js';
import type { Client, Route, Router } from './router.js';
import type { ProxyUser } from './settings.js';
import type { RouteNode } from './table.js';

export interface DataPlaneConfig {
  readonly connectTimeoutMs: number;
  readonly handshakeTimeoutMs: number;
  readonly retries: number;
  /** Bound on an absolute-form request's wait for the node's first answer byte. */
  readonly firstByteTimeoutMs: number;
  /** After one side of a spliced connection ended, bound on the other direction. */
  readonly halfCloseTimeoutMs: number;
  /** Empty: no authentication, every tenant's pools are candidates. */
  readonly users: ReadonlyMap<string, ProxyUser>;
}

export interface DataPlane {
  readonly router: Router;
  readonly counters: TrafficCounters;
  readonly config: DataPlaneConfig;
  /** A connection to a node failed (passive health signal). */
  connectFailed(node: RouteNode, error: string): void;
}

const noop = () => undefined;

const EMPTY: Buffer = Buffer.alloc(0);
/** Finds peers that vanished without a FIN (host gone, NAT entry dropped) on idle connections. */
const KEEPALIVE_MS = 30_000;
const CONNECT_OK = Buffer.from('HTTP/1.1 200 Connection Established\r\n\r\n');

/** Buffers what a client sends during its handshake; parsers take whole messages from it. */
class Inbox {
  private buf: Buffer = EMPTY;
  private wake: (() => void) | undefined;
  private over = false;

  constructor(private readonly sock: Socket) {
    sock.on('data', this.onData);
    sock.once('end', this.onEnd);
    sock.once('close', this.onEnd);
  }

  private readonly onData = (chunk: Buffer) => {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    this.wake?.();
  };

  private readonly onEnd = () => {
    this.over = true;
    this.wake?.();
  };

  /** The next message; rejects when the peer goes away first (the handshake timer bounds it). */
  async next<T>(parse: (b: Buffer) => Parsed<T> | null): Promise<T> {
    for (;;) {
      const r = parse(this.buf);
      if (r) {
        this.buf = this.buf.subarray(r.consumed);
        return r.value;
      }
      if (this.over) throw new Gone();
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }

  /** Stops buffering and hands back what arrived beyond the handshake. */
  release(): Buffer {
    this.sock.off('data', this.onData);
    this.sock.off('end', this.onEnd);
    this.sock.off('close', this.onEnd);
    this.sock.pause();
    const rest = this.buf;
    this.buf = EMPTY;
    return rest;
  }
}

/** The peer closed or the connection broke: nothing to answer. */
class Gone extends Error {}

/** No node could take the connection; `status` and `socks` say how to tell the client. */
class Unroutable extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly socks: number,
    readonly reason: RejectReason,
  ) {
    super(message);
  }
}

function dialTcp(ep: { host: string; port: number }, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: ep.host, port: ep.port, allowHalfOpen: true, noDelay: true });
    const timer = setTimeout(() => s.destroy(new Error(`connect timed out after ${timeoutMs} ms`)), timeoutMs);
    const onError = (err: Error) => {
      clearTimeout(timer);
      reject(err);
    };
    s.once('connect', () => {
      clearTimeout(timer);
      s.off('error', onError);
      // Whoever takes the socket adds its own handling; until then an error must not throw.
      s.on('error', noop);
      resolve(s);
    });
    s.once('error', onError);
  });
}

class NodeRefused extends Error {}

/** Asks a node's HTTP proxy for a tunnel; resolves with the bytes it sent after its head. */
function nodeConnect(s: Socket, target: Target, timeoutMs: number): Promise<Buffer> {
  const authority = target.host.includes(':') ? `[${target.host}]:${target.port}` : `${target.host}:${target.port}`;
  s.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
  return new Promise((resolve, reject) => {
    let buf: Buffer = EMPTY;
    const done = (err: Error | undefined, rest?: Buffer) => {
      clearTimeout(timer);
      s.off('data', onData);
      s.off('end', onClose);
      s.off('close', onClose);
      s.off('error', onError);
      s.pause();
      if (err) reject(err);
      else resolve(rest!);
    };
    const onData = (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      try {
        const head = parseResponseHead(buf);
        if (!head) return;
        if (head.value < 200 || head.value > 299) done(new NodeRefused(`node answered CONNECT with ${head.value}`));
        else done(undefined, buf.subarray(head.consumed));
      } catch (err) {
        done(err as Error);
      }
    };
    const onClose = () => done(new Error('node closed before answering CONNECT'));
    const onError = (err: Error) => done(err);
    const timer = setTimeout(() => done(new Error(`node did not answer CONNECT within ${timeoutMs} ms`)), timeoutMs);
    s.on('data', onData);
    // A half-open capable socket reports the node's FIN as `end` only.
    s.once('end', onClose);
    s.once('close', onClose);
    s.once('error', onError);
  });
}

interface Dialed {
  readonly node: RouteNode;
  readonly upstream: Socket;
  /** Bytes the node sent past its CONNECT answer, owed to the client. */
  readonly rest: Buffer;
}

/**
 * Picks a node and opens the path to it, trying another node after a failure (bounded by
 * `retries`). Nothing has reached the client yet, so a retry is invisible to it.
 */
async function dial(dp: DataPlane, route: Route, client: Client, tunnel: Target | undefined, tried?: Set<string>): Promise<Dialed> {
  let exclude = tried;
  let lastError = '';
  let refusedByNode = false;
  let picked = false;
  for (let attempt = 0; attempt <= dp.config.retries; attempt++) {
    const node = dp.router.pick(route, client, exclude);
    if (!node) break;
    picked = true;
    node.traffic.opened();
    let upstream: Socket | undefined;
    try {
      upstream = await dialTcp(node.endpoint!, dp.config.connectTimeoutMs);
      const rest = tunnel ? await nodeConnect(upstream, tunnel, dp.config.connectTimeoutMs) : EMPTY;
      node.traffic.dTotal++;
      return { node, upstream, rest };
    } catch (err) {
      upstream?.destroy();
      node.traffic.closed();
      node.traffic.dFailed++;
      lastError = (err as Error).message;
      refusedByNode ||= err instanceof NodeRefused;
      dp.connectFailed(node, lastError);
      (exclude ??= new Set()).add(node.id);
    }
  }
  if (!picked) throw new Unroutable('no healthy node for this route', 503, SOCKS.REP_GENERAL_FAILURE, 'unavailable');
  if (refusedByNode) throw new Unroutable(`the target could not be reached: ${lastError}`, 502, SOCKS.REP_HOST_UNREACHABLE, 'failed');
  throw new Unroutable(`no node could be reached: ${lastError}`, 502, SOCKS.REP_GENERAL_FAILURE, 'failed');
}

/**
 * Pipes both ways; the node's connection count drops and bytes are counted once both close.
 * Once one side has ended, the other direction gets `halfCloseTimeoutMs` to finish: a peer
 * that never ends its side would otherwise hold both sockets forever.
 */
function splice(client: Socket, d: Dialed, early: Buffer, halfCloseTimeoutMs: number): void {
  const { upstream, node } = d;
  client.setNoDelay(true);
  client.setKeepAlive(true, KEEPALIVE_MS);
  upstream.setKeepAlive(true, KEEPALIVE_MS);
  if (d.rest.length) client.write(d.rest);
  if (early.length) upstream.write(early);
  let halfClosed: NodeJS.Timeout | undefined;
  const ended = () => {
    halfClosed ??= setTimeout(() => {
      client.destroy();
      upstream.destroy();
    }, halfCloseTimeoutMs).unref();
  };
  let open = 2;
  const closed = (hadError: boolean) => {
    // A clean close has already passed its end on through pipe; only a broken one cuts the other side.
    if (hadError) {
      client.destroy();
      upstream.destroy();
    }
    if (--open === 0) {
      clearTimeout(halfClosed);
      node.traffic.closed();
      node.traffic.dRx += client.bytesRead;
      node.traffic.dTx += client.bytesWritten;
    }
  };
  client.on('error', noop);
  upstream.on('error', noop);
  client.once('close', closed);
  upstream.once('close', closed);
  // A client of an absolute-form request may have ended its side before the answer came.
  if (client.readableEnded || upstream.readableEnded) ended();
  else {
    client.once('end', ended);
    upstream.once('end', ended);
  }
  client.pipe(upstream);
  upstream.pipe(client);
}

/** The client left while its node was being dialled. */
function abandon(d: Dialed): void {
  d.upstream.destroy();
  d.node.traffic.closed();
}

interface Scope {
  readonly tenantId: string | undefined;
}

/** Checks credentials when users are configured; without users every request is unscoped. */
function authenticate(users: ReadonlyMap<string, ProxyUser>, creds: Credentials | undefined, routing: Routing | undefined): Scope | undefined {
  if (users.size === 0) return { tenantId: undefined };
  if (!creds || !routing) return undefined;
  const user = users.get(routing.user);
  if (!user || user.password !== creds.password) return undefined;
  return { tenantId: user.tenantId };
}

/** A request that names no country (main port, no `country-` in the username) may leave anywhere. */
function routeFor(dp: DataPlane, listenerCountry: string | undefined, routing: Routing | undefined, scope: Scope): Route {
  return dp.router.exitRoute(routing?.country ?? listenerCountry, scope.tenantId);
}

/** One client of a proxy port: SOCKS5 if the first byte is 5, an HTTP proxy request otherwise. */
export function acceptProxyClient(dp: DataPlane, sock: Socket, listenerCountry: string | undefined): void {
  sock.on('error', noop);
  const timer = setTimeout(() => sock.destroy(), dp.config.handshakeTimeoutMs);
  // Once the request is read, the client waits on us: dialling has its own bounds.
  const disarm = () => clearTimeout(timer);
  const inbox = new Inbox(sock);
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
  const users = dp.config.users;
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
  const method = methods.has(SOCKS.USER_PASS) ? SOCKS.USER_PASS : users.size === 0 && methods.has(SOCKS.NO_AUTH) ? SOCKS.NO_AUTH : SOCKS.NO_METHOD;
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
      scope = authenticate(users, creds, routing);
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
  disarm();
  let dialed: Dialed;
  try {
    const route = routeFor(dp, listenerCountry, routing, scope);
    dialed = await dial(dp, route, { address: sock.remoteAddress, region: routing?.region, session: routing?.session }, target);
  } catch (err) {
    if (!(err instanceof Unroutable)) throw err;
    dp.counters.reject(err.reason);
    sock.end(socksReply(err.socks));
    return;
  }
  if (sock.destroyed) return abandon(dialed);
  const early = inbox.release();
  sock.write(socksReply(SOCKS.REP_SUCCESS));
  splice(sock, dialed, early, dp.config.halfCloseTimeoutMs);
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
    scope = authenticate(dp.config.users, req.credentials, routing);
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
  disarm();
  let dialed: Dialed;
  try {
    const route = routeFor(dp, listenerCountry, routing, scope);
    dialed = await dial(dp, route, { address: sock.remoteAddress, region: routing?.region, session: routing?.session }, req.connect ? req.target : undefined);
  } catch (err) {
    if (!(err instanceof Unroutable)) throw err;
    dp.counters.reject(err.reason);
    sock.end(httpError(err.status, err.message));
    return;
  }
  if (sock.destroyed) return abandon(dialed);
  const early = inbox.release();
  if (req.connect) {
    sock.write(CONNECT_OK);
    splice(sock, dialed, early, dp.config.halfCloseTimeoutMs);
  } else {
    const client = { address: sock.remoteAddress, region: routing?.region, session: routing?.session };
    await forwardRequest(dp, sock, routeFor(dp, listenerCountry, routing, scope), client, req.head, early, dialed);
  }
}

type Answer = Buffer | 'node-gone' | 'client-gone' | 'timeout';

/**
 * The node's first answer bytes, or why there are none. Node sockets are half-open capable,
 * so a node that dies after reading the request shows up as `end` (its FIN), not `close`:
 * waiting for `close` alone hung such requests. A client that leaves, or a node silent for
 * `timeoutMs`, ends the wait too.
 */
function firstAnswer(client: Socket, upstream: Socket, timeoutMs: number): Promise<Answer> {
  return new Promise((resolve) => {
    const done = (answer: Answer) => {
      clearTimeout(timer);
      upstream.off('data', onData);
      upstream.off('end', onNodeGone);
      upstream.off('close', onNodeGone);
      client.off('close', onClientGone);
      upstream.pause();
      resolve(answer);
    };
    const onData = (chunk: Buffer) => done(chunk);
    const onNodeGone = () => done('node-gone');
    const onClientGone = () => done('client-gone');
    const timer = setTimeout(() => done('timeout'), timeoutMs);
    upstream.on('error', noop);
    upstream.on('data', onData);
    upstream.once('end', onNodeGone);
    upstream.once('close', onNodeGone);
    client.once('close', onClientGone);
    if (client.destroyed) done('client-gone');
  });
}

/**
 * Absolute-form: the node's proxy takes the request as the client sent it, minus our
 * credentials. A node that goes away before its first answer byte (killed mid-request) costs
 * the client nothing: the request goes to another node, unless the client already sent more
 * than the head (a body that cannot be replayed).
 */
async function forwardRequest(dp: DataPlane, sock: Socket, route: Route, client: Client, head: string, early: Buffer, dialed: Dialed): Promise<void> {
  let d = dialed;
  const readBefore = sock.bytesRead;
  const tried = new Set<string>();
  for (let attempt = 0; ; attempt++) {
    d.upstream.write(head);
    if (early.length) d.upstream.write(early);
    sock.pipe(d.upstream);
    const first = await firstAnswer(sock, d.upstream, dp.config.firstByteTimeoutMs);
    // splice pipes the client again, with the close handling of an established connection.
    sock.unpipe(d.upstream);
    if (Buffer.isBuffer(first)) {
      if (sock.destroyed) return abandon(d);
      splice(sock, { ...d, rest: first }, EMPTY, dp.config.halfCloseTimeoutMs);
      return;
    }
    abandon(d);
    if (first === 'client-gone') return;
    if (first === 'timeout') {
      // Slow targets look the same as a hung node from here: not a health signal.
      dp.counters.reject('failed');
      sock.end(httpError(504, `no answer within ${dp.config.firstByteTimeoutMs} ms`));
      return;
    }
    d.node.traffic.dFailed++;
    dp.connectFailed(d.node, 'node closed before answering');
    tried.add(d.node.id);
    if (sock.destroyed) return;
    if (attempt >= dp.config.retries || sock.bytesRead !== readBefore) {
      dp.counters.reject('failed');
      sock.end(httpError(502, 'the node closed before answering'));
      return;
    }
    try {
      d = await dial(dp, route, client, undefined, tried);
    } catch (err) {
      if (!(err instanceof Unroutable)) throw err;
      dp.counters.reject(err.reason);
      sock.end(httpError(err.status, err.message));
      return;
    }
    if (sock.destroyed) return abandon(d);
  }
}

/** One client of an app pool's port: plain TCP to a node of the pool. */
export function acceptAppClient(dp: DataPlane, sock: Socket, poolId: string): void {
  sock.on('error', noop);
  const route = dp.router.poolRoute(poolId);
  dial(dp, route, { address: sock.remoteAddress }, undefined).then(
    (dialed) => {
      if (sock.destroyed) return abandon(dialed);
      splice(sock, dialed, EMPTY, dp.config.halfCloseTimeoutMs);
    },
    (err: unknown) => {
      dp.counters.reject(err instanceof Unroutable ? err.reason : 'failed');
      sock.destroy();
    },
  );
}
