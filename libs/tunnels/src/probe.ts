import { connect } from 'node:net';
import { release } from '@switchyard/tcp';
import type { ProbeResult } from './paths.js';

/** Where a path leads from the edge: the address a new connection over it is dialled to. */
export interface Target {
  readonly host: string;
  readonly port: number;
}

/**
 * One TCP connect to `target`, timed: `{ ok, latencyMs }`, or `{ ok: false, reason }` with the
 * error code (ECONNREFUSED, EHOSTUNREACH, ETIMEDOUT when nothing answers within `timeoutMs`,
 * ABORTED when `signal` fires). Never rejects. A connect proves only that something accepts
 * at the target: over an SSH reverse tunnel that is the edge's sshd, whatever the node does.
 * The connection is closed with a FIN (never a reset, which some servers log as an attack),
 * bounded by `timeoutMs` for a peer that does not close its side.
 */
export function probe(target: Target, timeoutMs: number, signal?: AbortSignal): Promise<ProbeResult> {
  if (signal?.aborted) return Promise.resolve({ ok: false, reason: 'ABORTED' });
  return new Promise((resolve) => {
    const began = performance.now();
    const socket = connect({ host: target.host, port: target.port });
    let settled = false;
    const settle = (result: ProbeResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      resolve(result);
    };
    const fail = (reason: string) => {
      socket.destroy();
      settle({ ok: false, reason });
    };
    const onAbort = () => fail('ABORTED');
    const timer = setTimeout(() => fail('ETIMEDOUT'), timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => {
      const latencyMs = performance.now() - began;
      release(socket, timeoutMs);
      settle({ ok: true, latencyMs });
    });
    // Kept after the connect too: an error while closing only ends the socket sooner.
    socket.on('error', (err) => fail(reasonOf(err)));
  });
}

/** An error's code, for a probe result or a switch reason; its message when it has none. */
export function reasonOf(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code === 'string' && code) return code;
  // Several addresses tried (a name with A and AAAA records): the first one's code.
  if (err instanceof AggregateError) return reasonOf(err.errors[0]);
  return err instanceof Error ? err.message : String(err);
}
