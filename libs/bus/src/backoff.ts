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

/**
 * JetStream redelivery of a failed message: 1 s, 2 s, 4 s, … then once a minute. An outage of
 * Postgres, Docker or NATS is then waited out for minutes (see redeliverySchedule) rather than
 * exhausting a command's deliveries in seconds, while no retry waits longer than a minute.
 */
export const REDELIVERY: Backoff = { initialMs: 1_000, maxMs: 60_000 };

/** The waits between the deliveries of a message that fails every time, until the `maxDeliver`-th dead-letters it. */
export function redeliverySchedule(maxDeliver: number, policy: Backoff = REDELIVERY): number[] {
  return Array.from({ length: Math.max(0, Math.floor(maxDeliver) - 1) }, (_, i) => backoffDelay(policy, i + 1));
}
