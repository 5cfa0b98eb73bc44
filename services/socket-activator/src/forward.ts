import { connect, type Socket } from 'node:net';

// A client we let go is given this long to close its side before its socket is destroyed.
const RELEASE_GRACE_MS = 10_000;

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

/**
 * Pipes two connected sockets both ways. Half-close aware (each side's FIN is passed on and the
 * other direction keeps flowing; both sockets need allowHalfOpen); an error ends both.
 */
export function pipeBoth(client: Socket, upstream: Socket, onFirstByte?: () => void): void {
  client.setNoDelay(true);
  upstream.setNoDelay(true);
  if (onFirstByte) upstream.once('data', onFirstByte);
  const drop = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', drop);
  upstream.on('error', drop);
  client.pipe(upstream);
  upstream.pipe(client);
}

export interface ForwardOptions {
  host: string;
  port: number;
  localAddress?: string;
  onFirstByte?: () => void;
  /** The node did not take the connection; the client has been let go cleanly. */
  onRefused?: (err: Error) => void;
}

/** Connects to the node and pipes the (paused) client to it; a refused node ends the client cleanly. */
export function forward(client: Socket, o: ForwardOptions): void {
  client.on('error', () => {});
  const upstream = connect({ host: o.host, port: o.port, allowHalfOpen: true, ...(o.localAddress ? { localAddress: o.localAddress } : {}) });
  const refused = (err: Error) => {
    upstream.destroy();
    release(client);
    o.onRefused?.(err);
  };
  upstream.once('error', refused);
  // A client that goes away while the node is being dialled takes the dial with it.
  client.once('close', () => upstream.destroy());
  upstream.once('connect', () => {
    upstream.off('error', refused);
    pipeBoth(client, upstream, o.onFirstByte);
  });
}
