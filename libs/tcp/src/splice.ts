import type { Socket } from 'node:net';
import { KEEPALIVE_MS, noop } from './defaults.js';

export interface SpliceOptions {
  /**
   * Once one side has ended (sent its FIN), the other direction gets this long before both
   * sockets are destroyed: a peer that never ends its side would otherwise hold both forever.
   */
  readonly halfCloseMs: number;
  /** Bytes owed to `a` (read from `b` before the splice), written first. */
  readonly toA?: Buffer;
  /** Bytes owed to `b` (read from `a` before the splice), written first. */
  readonly toB?: Buffer;
  /** Both sockets have closed; their byte counters (`bytesRead`, `bytesWritten`) are final. */
  readonly onClosed?: () => void;
}

/**
 * Pipes `a` and `b` both ways until both close. Half-close aware: each side's FIN is passed on
 * while the other direction keeps flowing, for at most `halfCloseMs`; a broken side (reset,
 * error) cuts the other at once. Both sockets must be open and allow half-open; either may
 * already have ended its side.
 */
export function splice(a: Socket, b: Socket, o: SpliceOptions): void {
  for (const s of [a, b]) {
    s.setNoDelay(true);
    s.setKeepAlive(true, KEEPALIVE_MS);
    s.on('error', noop);
  }
  if (o.toA?.length) a.write(o.toA);
  if (o.toB?.length) b.write(o.toB);
  const destroyBoth = () => {
    a.destroy();
    b.destroy();
  };
  let halfClosed: NodeJS.Timeout | undefined;
  const ended = () => {
    halfClosed ??= setTimeout(destroyBoth, o.halfCloseMs).unref();
  };
  let open = 2;
  const closed = (hadError: boolean) => {
    // A clean close has already passed its end on through the pipe; only a broken one cuts the other side.
    if (hadError) destroyBoth();
    if (--open === 0) {
      clearTimeout(halfClosed);
      o.onClosed?.();
    }
  };
  a.once('close', closed);
  b.once('close', closed);
  if (a.readableEnded || b.readableEnded) ended();
  else {
    a.once('end', ended);
    b.once('end', ended);
  }
  a.pipe(b);
  b.pipe(a);
}
