import { connect, type Socket } from 'node:net';
import { KEEPALIVE_MS, noop } from './defaults.js';

export interface DialOptions {
  readonly host: string;
  readonly port: number;
  /** A connect that takes longer fails with an error saying so (a silent SYN drop otherwise waits minutes). */
  readonly timeoutMs: number;
  /** Leave from this address (e.g. one a redirect rule skips). */
  readonly localAddress?: string;
}

/**
 * Connects; resolves once connected, rejects on an error or the timeout (the socket is then
 * destroyed). The socket allows half-open (a FIN from the peer does not end our side), has no
 * Nagle delay, and keep-alive on. An error after the connect no longer throws: the caller adds
 * its own handling.
 */
export function dial(o: DialOptions): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({
      host: o.host,
      port: o.port,
      allowHalfOpen: true,
      noDelay: true,
      keepAlive: true,
      keepAliveInitialDelay: KEEPALIVE_MS,
      ...(o.localAddress ? { localAddress: o.localAddress } : {}),
    });
    const timer = setTimeout(() => s.destroy(new Error(`connect timed out after ${o.timeoutMs} ms`)), o.timeoutMs);
    const onError = (err: Error) => {
      clearTimeout(timer);
      reject(err);
    };
    s.once('connect', () => {
      clearTimeout(timer);
      s.off('error', onError);
      s.on('error', noop);
      resolve(s);
    });
    s.once('error', onError);
  });
}
