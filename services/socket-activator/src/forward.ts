import type { Socket } from 'node:net';
import { dial, type FirstAnswer, firstAnswer, release, splice } from '@switchyard/tcp';

export { release };

// What a held client sent is kept for a re-dial only up to this much.
const REPLAY_LIMIT_BYTES = 1 << 20;
// Defaults of ACTIVATOR_CONNECT_TIMEOUT_MS and ACTIVATOR_HALF_CLOSE_TIMEOUT_MS (the load balancer's too).
const CONNECT_TIMEOUT_MS = 3000;
const HALF_CLOSE_MS = 60_000;

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
  /**
   * With `redial`: the node turned the connection away (refused it, or closed it before a
   * byte) and no dial is left. A wake whose connections all end so did not wake the node.
   */
  onTurnedAway?: () => void;
  connectTimeoutMs?: number;
  /** Once one side ended, the other direction gets this long before both are closed. */
  halfCloseMs?: number;
}

/**
 * Connects a (paused) client to the node and pipes both ways. Half-close aware: each side's
 * FIN is passed on while the other direction keeps flowing, for at most `halfCloseMs` (counted
 * from the first FIN, whether the node has answered yet or not); an error ends both.
 */
export function forward(client: Socket, o: ForwardOptions): void {
  client.setNoDelay(true);
  client.on('error', () => {});
  const halfCloseMs = o.halfCloseMs ?? HALF_CLOSE_MS;
  const deadline = performance.now() + (o.redial?.forMs ?? 0);
  let sent: Buffer[] = [];
  let sentBytes = 0;
  let replayable = true;
  let waiting = false;
  let upstream: Socket | undefined;
  let clientEndedAt: number | undefined;
  let halfClosed: NodeJS.Timeout | undefined;

  // Until the node's first byte, a copy of what the client sends, for a re-dial. Past the
  // limit there is no re-dial; the client waits (paused) for the node instead.
  const tap = (d: Buffer) => {
    sent.push(d);
    sentBytes += d.length;
    if (sentBytes <= REPLAY_LIMIT_BYTES) return;
    replayable = false;
    client.off('data', tap);
    if (!waiting) client.pause();
  };
  if (o.redial) client.on('data', tap);
  // The bound runs before the node's first byte too: a node that never answers a client
  // that has finished sending would hold both.
  const onClientEnd = () => {
    clientEndedAt = performance.now();
    halfClosed = setTimeout(() => {
      client.destroy();
      upstream?.destroy();
    }, halfCloseMs).unref();
  };
  client.once('end', onClientEnd);
  const canRedial = () => !!o.redial && clientEndedAt === undefined && !client.destroyed && replayable && performance.now() < deadline;
  const redialLater = () => setTimeout(attempt, o.redial!.everyMs);

  /** From here on the splice owns both sockets, with what is left of a bound already running. */
  const spliceWith = (up: Socket, toClient?: Buffer) => {
    client.off('end', onClientEnd);
    clearTimeout(halfClosed);
    const left = clientEndedAt === undefined ? halfCloseMs : Math.max(1, halfCloseMs - (performance.now() - clientEndedAt));
    splice(client, up, { halfCloseMs: left, ...(toClient ? { toA: toClient } : {}) });
  };

  /** No more dials: the copy kept for one goes. */
  const stopTapping = () => {
    client.off('data', tap);
    sent = [];
  };

  const settle = (up: Socket, answer: FirstAnswer) => {
    waiting = false;
    if (answer === 'client-gone') return void up.destroy();
    // Turned away before a byte: give up this connection and dial again.
    if (!Buffer.isBuffer(answer) && canRedial()) {
      up.destroy();
      return void redialLater();
    }
    stopTapping();
    if (Buffer.isBuffer(answer)) {
      o.onFirstByte?.();
      return spliceWith(up, answer);
    }
    if (o.redial && answer !== 'timeout') o.onTurnedAway?.();
    // The node's FIN goes on to the client; a node that broke the connection cuts it.
    if (answer === 'upstream-ended') return spliceWith(up);
    up.destroy();
    client.destroy();
  };

  const attempt = () => {
    if (client.destroyed) return;
    dial({ host: o.host, port: o.port, timeoutMs: o.connectTimeoutMs ?? CONNECT_TIMEOUT_MS, ...(o.localAddress ? { localAddress: o.localAddress } : {}) })
      .then(
        (up) => {
          if (client.destroyed) return void up.destroy();
          upstream = up;
          // Nothing to dial again (a node known awake): splice at once. Waiting for the first
          // answer first cost ~0.06 ms per connection in proxy mode (bench/cold-start.ts).
          if (!o.redial) {
            if (o.onFirstByte) up.once('data', () => o.onFirstByte?.());
            return spliceWith(up);
          }
          if (sent.length > 0) up.write(Buffer.concat(sent));
          if (!replayable) sent = [];
          waiting = true;
          return firstAnswer(client, up).then((answer) => settle(up, answer));
        },
        (err: Error) => {
          if (client.destroyed) return;
          if (canRedial()) return void redialLater();
          stopTapping();
          release(client);
          o.onRefused?.(err);
          if (o.redial) o.onTurnedAway?.();
        },
      )
      // A throw in a callback would otherwise be an unhandled rejection that ends the whole
      // activator: it costs this connection only.
      .catch(() => {
        upstream?.destroy();
        client.destroy();
      });
  };
  attempt();
}
