import { setTimeout as sleep } from 'node:timers/promises';

export interface EventuallyOptions {
  /** Between two reads; 200 ms unless given. */
  intervalMs?: number;
  /**
   * On timeout, resolve with the last value instead of throwing: for a caller whose own
   * assertion on that value says more than "not within N ms".
   */
  returnLast?: boolean;
}

/**
 * Polls `read` until `done` holds for its value, and returns that value; throws after
 * `timeoutMs` with `what` and the last value seen. The one way tests and benches wait for
 * something to become true (no vitest in it, so benches run it under plain tsx). An error
 * from `read` ends the wait: a read that may fail while the system settles says so itself
 * (`.catch(() => undefined)`).
 */
export async function eventually<T>(read: () => T | Promise<T>, done: (value: T) => boolean, timeoutMs: number, what: string, opts: EventuallyOptions = {}): Promise<T> {
  const intervalMs = opts.intervalMs ?? 200;
  const deadline = Date.now() + timeoutMs;
  let last: T;
  // The last read comes at the deadline, so a condition met while sleeping is still seen.
  for (;;) {
    last = await read();
    if (done(last)) return last;
    const left = deadline - Date.now();
    if (left <= 0) break;
    await sleep(Math.min(intervalMs, left));
  }
  if (opts.returnLast) return last;
  throw new Error(`${what}: not within ${timeoutMs} ms; last seen ${describe(last)}`);
}

function describe(value: unknown): string {
  if (value instanceof Error) return String(value);
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 2000 ? `${text.slice(0, 2000)}…` : text;
}

/** The error a promise rejects with; throws if it resolves instead. */
export async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}
