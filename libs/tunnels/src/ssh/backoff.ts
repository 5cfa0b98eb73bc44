// When to try again after an SSH session failed. Written here rather than taken from
// `exponential-backoff`: that library sleeps on a timer it does not expose (stop() could not cut
// a 30 s wait short, and the timer would hold a draining service open) and draws from
// Math.random with no way to pass another source, so its policy could not be tested as a
// function. The policy is a few lines; the sleep is an abortable timer in the supervisor.

export interface BackoffPolicy {
  /** The wait after the first failure. */
  initialMs: number;
  /** Each further failure in a row multiplies the wait by this. */
  factor: number;
  /** The wait never exceeds this (before jitter takes some off). */
  maxMs: number;
  /**
   * Share of the wait taken off at random, 0..1, so nodes that lost the edge together do not come
   * back in step. 0.5 keeps every wait within [half, whole] of the exponential one.
   */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 500, factor: 2, maxMs: 30_000, jitter: 0.5 };

/**
 * The wait before the next attempt after `failures` failures in a row (0 after a session that was
 * up and then ended: it still waits `initialMs`, so an edge that accepts and drops at once is not
 * hammered). `random` returns [0, 1).
 */
export function backoffDelay(failures: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const { initialMs, factor, maxMs, jitter } = policy;
  if (!(initialMs > 0 && factor >= 1 && maxMs >= initialMs && jitter >= 0 && jitter <= 1)) {
    throw new Error(`backoff policy out of range: ${JSON.stringify(policy)}`);
  }
  // Capped in the exponent too, so a long outage cannot overflow to Infinity.
  const exponential = Math.min(maxMs, initialMs * factor ** Math.min(Math.max(0, failures), 64));
  return Math.round(exponential * (1 - jitter * random()));
}
