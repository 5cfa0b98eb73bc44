import type { Socket } from 'node:net';
import { dial, splice } from '@switchyard/tcp';
import type { RejectReason } from '../counters.js';
import { parseResponseHead, SOCKS, type Target } from '../protocol.js';
import type { Client, Route } from '../router.js';
import type { RouteNode } from '../table.js';
import type { DataPlane } from './plane.js';

export const EMPTY: Buffer = Buffer.alloc(0);

/** No node could take the connection; `status` and `socks` say how to tell the client. */
export class Unroutable extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly socks: number,
    readonly reason: RejectReason,
  ) {
    super(message);
  }
}

/** The node answered CONNECT, but not with a tunnel: the target's fault, not the node's. */
class TargetRefused extends Error {
  constructor(readonly status: number) {
    super(`node answered CONNECT with ${status}`);
  }
}

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
        if (head.value < 200 || head.value > 299) done(new TargetRefused(head.value));
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

export interface Dialed {
  readonly node: RouteNode;
  readonly upstream: Socket;
  /** Bytes the node sent past its CONNECT answer, owed to the client. */
  readonly rest: Buffer;
}

/**
 * Picks a node and opens the path to it, trying another node after a failure (bounded by
 * `retries`). Nothing has reached the client yet, so a retry is invisible to it.
 */
async function dialRoute(dp: DataPlane, route: Route, client: Client, tunnel: Target | undefined, tried?: Set<string>): Promise<Dialed> {
  let exclude = tried;
  let lastError = '';
  let picked = false;
  for (let attempt = 0; attempt <= dp.config.retries; attempt++) {
    const node = dp.router.pick(route, client, exclude);
    if (!node) break;
    picked = true;
    node.traffic.opened();
    let upstream: Socket | undefined;
    try {
      const { host, port } = node.endpoint!;
      upstream = await dial({ host, port, timeoutMs: dp.config.connectTimeoutMs });
      const rest = tunnel ? await nodeConnect(upstream, tunnel, dp.config.connectTimeoutMs) : EMPTY;
      node.traffic.dTotal++;
      return { node, upstream, rest };
    } catch (err) {
      upstream?.destroy();
      node.traffic.closed();
      // The node is up and answered for its target (down, or refused by the node's own
      // policy): another node would reach the same target, and passive health must not
      // mark the node down for it.
      if (err instanceof TargetRefused) {
        const msg = `the target could not be reached: ${err.message}`;
        if (err.status === 403) throw new Unroutable(msg, 403, SOCKS.REP_NOT_ALLOWED, 'denied');
        throw new Unroutable(msg, 502, SOCKS.REP_HOST_UNREACHABLE, 'failed');
      }
      node.traffic.dFailed++;
      lastError = (err as Error).message;
      dp.connectFailed(node, lastError);
      (exclude ??= new Set()).add(node.id);
    }
  }
  if (!picked) throw new Unroutable('no healthy node for this route', 503, SOCKS.REP_GENERAL_FAILURE, 'unavailable');
  throw new Unroutable(`no node could be reached: ${lastError}`, 502, SOCKS.REP_GENERAL_FAILURE, 'failed');
}

/**
 * Dials for a client that waits on us. When no node can take it, the rejection is counted and
 * the client told (`answer`'s bytes, then a FIN; no bytes: the connection is dropped). A client
 * that left meanwhile costs nothing but the node's connection. Resolves with the path only
 * when both ends are there.
 */
export async function dialForClient(
  dp: DataPlane,
  sock: Socket,
  route: Route,
  client: Client,
  tunnel: Target | undefined,
  answer: (err: Unroutable) => Buffer | string | undefined,
  tried?: Set<string>,
): Promise<Dialed | undefined> {
  let dialed: Dialed;
  try {
    dialed = await dialRoute(dp, route, client, tunnel, tried);
  } catch (err) {
    if (!(err instanceof Unroutable)) throw err;
    dp.counters.reject(err.reason);
    const reply = answer(err);
    if (reply) sock.end(reply);
    else sock.destroy();
    return undefined;
  }
  if (!sock.destroyed) return dialed;
  abandon(dialed);
  return undefined;
}

/** The client left before its node's path was used. */
export function abandon(d: Dialed): void {
  d.upstream.destroy();
  d.node.traffic.closed();
}

/**
 * Pipes the client and its node both ways (a bounded half-close: see splice); the node's
 * connection count drops and bytes are counted once both close. With `idleMs`, a connection
 * that carries no byte either way for that long is cut (every byte passes the client socket).
 */
export function spliceToNode(client: Socket, d: Dialed, early: Buffer, halfCloseMs: number, idleMs?: number): void {
  const { node } = d;
  if (idleMs) {
    client.setTimeout(idleMs, () => {
      client.destroy();
      d.upstream.destroy();
    });
  }
  splice(client, d.upstream, {
    halfCloseMs,
    toA: d.rest,
    toB: early,
    onClosed: () => {
      node.traffic.closed();
      node.traffic.dRx += client.bytesRead;
      node.traffic.dTx += client.bytesWritten;
    },
  });
}
