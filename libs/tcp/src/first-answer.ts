import type { Socket } from 'node:net';
import { noop } from './defaults.js';

/**
 * The upstream's first bytes, or why there are none: it ended its side (FIN) or closed (reset,
 * error) first, the client closed, or the timeout passed.
 */
export type FirstAnswer = Buffer | 'upstream-ended' | 'upstream-closed' | 'client-gone' | 'timeout';

/**
 * Pipes what the client sends (its FIN too) to the upstream while waiting for the upstream's
 * first bytes, then stops: the client is unpiped and the upstream paused, so the caller decides
 * what comes next (splice them, dial again, answer the client). The upstream should allow
 * half-open: one that dies after reading a request then shows up as an end (its FIN), which is
 * reported, not taken for a close. `timeoutMs` undefined: no bound.
 */
export function firstAnswer(client: Socket, upstream: Socket, timeoutMs?: number): Promise<FirstAnswer> {
  return new Promise((resolve) => {
    const done = (answer: FirstAnswer) => {
      clearTimeout(timer);
      upstream.off('data', onData);
      upstream.off('end', onEnded);
      upstream.off('close', onClosed);
      client.off('close', onClientGone);
      client.unpipe(upstream);
      upstream.pause();
      resolve(answer);
    };
    const onData = (chunk: Buffer) => done(chunk);
    const onEnded = () => done('upstream-ended');
    const onClosed = () => done('upstream-closed');
    const onClientGone = () => done('client-gone');
    const timer = timeoutMs === undefined ? undefined : setTimeout(() => done('timeout'), timeoutMs);
    upstream.on('error', noop);
    upstream.on('data', onData);
    upstream.once('end', onEnded);
    upstream.once('close', onClosed);
    client.once('close', onClientGone);
    if (client.destroyed) done('client-gone');
    else client.pipe(upstream);
  });
}
