import type { Socket } from 'node:net';
import { firstAnswer } from '@switchyard/tcp';
import { httpError } from '../protocol.js';
import type { Client, Route } from '../router.js';
import type { DataPlane } from './plane.js';
import { abandon, type Dialed, dialForClient, EMPTY, spliceToNode } from './upstream.js';

/**
 * Absolute-form: the node's proxy takes the request as the client sent it, minus our
 * credentials. A node that goes away before its first answer byte (killed mid-request) costs
 * the client nothing: the request goes to another node, unless the client already sent more
 * than the head (a body that cannot be replayed). The wait for that byte is bounded: node
 * sockets are half-open capable, so a node that dies after reading the request shows up as its
 * FIN, and a client that leaves or a node silent for `firstByteTimeoutMs` ends the wait too.
 */
export async function forwardRequest(dp: DataPlane, sock: Socket, route: Route, client: Client, head: string, early: Buffer, dialed: Dialed): Promise<void> {
  let d = dialed;
  const readBefore = sock.bytesRead;
  const tried = new Set<string>();
  for (let attempt = 0; ; attempt++) {
    d.upstream.write(head);
    if (early.length) d.upstream.write(early);
    const first = await firstAnswer(sock, d.upstream, dp.config.firstByteTimeoutMs);
    if (Buffer.isBuffer(first)) {
      if (sock.destroyed) return abandon(d);
      // Spliced with the close handling of an established connection.
      spliceToNode(sock, { ...d, rest: first }, EMPTY, dp.config.halfCloseTimeoutMs, dp.config.idleTimeoutMs);
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
    const next = await dialForClient(dp, sock, route, client, undefined, (err) => httpError(err.status, err.message), tried);
    if (!next) return;
    d = next;
  }
}
