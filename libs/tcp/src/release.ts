import type { Socket } from 'node:net';
import { noop } from './defaults.js';

/**
 * Ends a connection cleanly: FIN, never RST. What the peer still sends is read and dropped,
 * so no unread data is left in the socket when it closes (that would make the kernel reset
 * it). A peer that does not close its side within `graceMs` is cut.
 */
export function release(socket: Socket, graceMs = 10_000): void {
  socket.on('error', noop);
  socket.resume();
  socket.end();
  setTimeout(() => socket.destroy(), graceMs).unref();
}
