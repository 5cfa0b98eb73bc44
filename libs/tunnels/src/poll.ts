import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Reads until `done` holds or `timeoutMs` has passed, `intervalMs` apart, with one last read at
 * the deadline; returns the last value and whether it met the condition. Bounded in time and
 * so in count: each wait here is on another process (wireguard-go, a peer's handshake, an
 * SSH session draining).
 */
export async function pollUntil<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs: number, intervalMs: number): Promise<{ value: T; met: boolean }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return { value, met: true };
    const left = deadline - Date.now();
    if (left <= 0) return { value, met: false };
    await sleep(Math.min(intervalMs, left));
  }
}
