/** Exponential backoff: the delay doubles (or grows by `factor`) per attempt, up to `maxMs`. */
export interface Backoff {
  /** Delay before the first retry. */
  readonly initialMs: number;
  readonly maxMs: number;
  /** Growth per attempt; 2 unless said. */
  readonly factor?: number;
}

/**
 * The delay before retry number `attempt` (1 = the first retry). The one formula every retry
 * of the project uses: JetStream redeliveries, the outbox, healing, Docker reconnects, rebuilds.
 */
export function backoffDelay(policy: Backoff, attempt: number): number {
  const steps = Math.max(0, Math.min(Math.floor(attempt) - 1, 64));
  return Math.min(policy.maxMs, policy.initialMs * (policy.factor ?? 2) ** steps);
}
