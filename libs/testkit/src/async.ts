import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Polls `read` until `done` holds for its value, and returns that value; throws after
 * `timeoutMs` with `what` and the last value seen. The one way tests and benches wait for
 * something to become true (no vitest in it, so benches run it under plain tsx). An error
 * from `read` ends the wait: a read that may fail while the system settles says so itself
 * (`.catch(() => undefined)`).
 */
export async function eventually<T>(
  read: () => T | Promise<T>,
  done: (value: T) => boolean,
  timeoutMs: number,
  what: string,
  intervalMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  do {
    last = await read();
    if (done(last)) return last;
    await sleep(Math.max(0, Math.min(intervalMs, deadline - Date.now())));
  } while (Date.now() < deadline);
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
