import type { Socket } from 'node:net';

// Socket helpers for unit tests with real sockets on loopback: no NATS, Docker or database code.

/** Resolves once the socket has closed; `false` if it is still open after `ms`. */
export function closedWithin(s: Socket, ms: number): Promise<boolean> {
  if (s.destroyed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    s.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}
