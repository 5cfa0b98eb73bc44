import { connect, type Socket } from 'node:net';

// A client we let go is given this long to close its side before its socket is destroyed.
const RELEASE_GRACE_MS = 10_000;
// What a held client sent is kept for a re-dial only up to this much.
const REPLAY_LIMIT_BYTES = 1 << 20;

/**
 * Ends a connection cleanly: FIN, never RST. What the client still sends is read and dropped,
 * so no unread data is left in the socket when it closes (that would make the kernel reset it).
 */
export function release(socket: Socket): void {
  socket.on('error', () => {});
  socket.resume();
  socket.end();
  setTimeout(() => socket.destroy(), RELEASE_GRACE_MS).unref();
}

export interface ForwardOptions {
  host: string;
  port: number;
  localAddress?: string;
  onFirstByte?: () => void;
  /**
   * A just-woken node may still turn a connection away (Docker's userland proxy accepts and
   * closes while the app is not listening yet): until the node's first byte, a connection it
   * closes or refuses is dialled again every `everyMs`, for up to `forMs`, and what the client
   * sent so far is sent again. Only while the client has not ended its side.
   */
  redial?: { forMs: number; everyMs: number };
  /** The node did not take the connection; the client has been let go cleanly. */
  onRefused?: (err: Error) => void;
}

/**
 * Connects a (paused) client to the node and pipes both ways. Half-close aware: each side's
 * FIN is passed on while the other direction keeps flowing (both sockets allow half-open);
 * an error ends both.
 */
export function forward(client: Socket, o: ForwardOptions): void {
  client.setNoDelay(true);
  const deadline = performance.now() + (o.redial?.forMs ?? 0);
  let sent: Buffer[] = [];
  let sentBytes = 0;
  let replayable = true;
  let gotByte = false;
  let clientEnded = false;
  let clientClosed = false;
  let upstream: Socket | undefined;
  let piped = false;

  // Until the node's first byte, a copy of what the client sends, for a re-dial. Past the
  // limit there is no re-dial; the client waits (paused) for the node instead.
  const tap = (d: Buffer) => {
    sent.push(d);
    sentBytes += d.length;
    if (sentBytes <= REPLAY_LIMIT_BYTES) return;
    replayable = false;
    client.off('data', tap);
    if (!piped) client.pause();
  };
  if (o.redial) client.on('data', tap);
  client.on('error', () => upstream?.destroy());
  client.once('end', () => (clientEnded = true));
  client.once('close', () => {
    clientClosed = true;
    upstream?.destroy();
  });
  const canRedial = () => !!o.redial && !gotByte && !clientEnded && !clientClosed && replayable && performance.now() < deadline;

  const dial = () => {
    const up = connect({ host: o.host, port: o.port, allowHalfOpen: true, ...(o.localAddress ? { localAddress: o.localAddress } : {}) });
    upstream = up;
    let connected = false;
    let lastError: Error | undefined;
    up.on('error', (err) => (lastError = err));
    up.once('connect', () => {
      connected = true;
      up.setNoDelay(true);
      if (sent.length > 0) up.write(Buffer.concat(sent));
      if (!replayable) sent = [];
      up.once('data', () => {
        gotByte = true;
        client.off('data', tap);
        sent = [];
        o.onFirstByte?.();
      });
      client.pipe(up);
      piped = true;
      up.pipe(client, { end: false });
    });
    up.once('end', () => {
      // Turned away before a byte: give up this connection (its close dials again).
      if (canRedial()) up.destroy();
      else client.end();
    });
    up.once('close', (hadError) => {
      client.unpipe(up);
      up.unpipe(client);
      piped = false;
      if (clientClosed) return;
      if (canRedial()) {
        setTimeout(dial, o.redial!.everyMs);
        return;
      }
      if (!connected) {
        release(client);
        o.onRefused?.(lastError ?? new Error('the node closed the connection'));
      } else if (hadError) client.destroy();
      else client.end();
    });
  };
  dial();
}
