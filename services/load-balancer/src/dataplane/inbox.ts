import type { Socket } from 'node:net';
import type { Parsed } from '../protocol.js';

const EMPTY: Buffer = Buffer.alloc(0);

/** The peer closed or the connection broke: nothing to answer. */
class Gone extends Error {}

/**
 * Buffers what a client sends during its handshake and until its node answers; parsers take
 * whole messages from it. Past `maxBytes` the socket is paused, so a client that streams
 * before its tunnel exists is held back by TCP instead of growing this process's memory.
 */
export class Inbox {
  private buf: Buffer = EMPTY;
  private wake: (() => void) | undefined;
  private over = false;

  constructor(
    private readonly sock: Socket,
    private readonly maxBytes: number,
  ) {
    sock.on('data', this.onData);
    sock.once('end', this.onEnd);
    sock.once('close', this.onEnd);
  }

  private readonly onData = (chunk: Buffer) => {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    if (this.buf.length >= this.maxBytes) this.sock.pause();
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
      // A parser's messages are smaller than maxBytes: if one is still incomplete, some bytes
      // were consumed since the pause and there is room again.
      if (this.sock.isPaused() && this.buf.length < this.maxBytes) this.sock.resume();
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }

  /** Bytes held now (at most one chunk past `maxBytes`). */
  get buffered(): number {
    return this.buf.length;
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
