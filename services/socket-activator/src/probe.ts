import { connect } from 'node:net';

const PROBE_LINGER_MS = 1000;

export interface ProbeOptions {
  host: string;
  port: number;
  /** Bind the probe to this address (nftables mode: the redirect rule skips it). */
  localAddress?: string;
  /** Accepted and not closed within this long (or data arrived) = ready. */
  settleMs: number;
  /** A connect that takes longer than this is a failed attempt. */
  connectTimeoutMs: number;
}

/**
 * One attempt: true when the port accepts and keeps the connection for settleMs. Docker's
 * userland proxy accepts on a host port before the container listens and closes at once when
 * the container refuses, so "accepted" alone is not "ready".
 */
export function probeOnce(o: ProbeOptions): Promise<boolean> {
  return new Promise((resolve) => {
    let settled = false;
    const timers: NodeJS.Timeout[] = [];
    const socket = connect({ host: o.host, port: o.port, ...(o.localAddress ? { localAddress: o.localAddress } : {}) });
    const done = (ready: boolean) => {
      if (settled) return;
      settled = true;
      for (const t of timers) clearTimeout(t);
      socket.removeAllListeners('data');
      // A clean close: the app sees an empty connection, not a reset; one that never closes
      // its side is not kept.
      if (ready && !socket.destroyed) {
        socket.end();
        setTimeout(() => socket.destroy(), PROBE_LINGER_MS).unref();
      } else socket.destroy();
      resolve(ready);
    };
    socket.on('error', () => done(false));
    socket.on('close', () => done(false));
    socket.on('end', () => done(false));
    socket.once('data', () => done(true));
    timers.push(setTimeout(() => done(false), o.connectTimeoutMs));
    socket.once('connect', () => {
      clearTimeout(timers[0]);
      timers.push(setTimeout(() => done(true), o.settleMs));
    });
    socket.on('end', () => socket.destroy());
  });
}
