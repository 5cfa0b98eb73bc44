import { backoffDelay } from '@switchyard/service-kit';

/**
 * When and how a node that died on its own is brought back: restarted in place with a
 * growing delay, and replaced by a fresh container once restarts do not stick. Pure, so the
 * decisions are tested without Docker.
 */
export interface HealPolicy {
  /** Delay before the first attempt; each further failure in the window doubles it. */
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  /** Restarts of one container before the next failure replaces it. */
  readonly maxRestarts: number;
  /** Failures older than this are forgotten: a node that ran that long is healthy again. */
  readonly windowMs: number;
  /** Failures within the window after which the manager stops trying and leaves the node in error. */
  readonly giveUpAfter: number;
}

export const DEFAULT_HEAL_POLICY: HealPolicy = Object.freeze({
  baseDelayMs: 500,
  maxDelayMs: 30_000,
  maxRestarts: 3,
  windowMs: 60_000,
  giveUpAfter: 10,
});

/** What the manager remembers of one node's trouble. */
export interface HealRecord {
  /** Times of deaths and failed attempts within the window, oldest first. */
  readonly failures: readonly number[];
  /** Restarts of the current container tried since it was created, whether they worked or not. */
  readonly restarts: number;
}

export const EMPTY_RECORD: HealRecord = Object.freeze({ failures: [], restarts: 0 });

export type HealAction = 'restart' | 'replace';
export type HealDecision = { readonly action: HealAction; readonly delayMs: number } | { readonly action: 'give_up'; readonly failures: number };

/** Adds a failure at `now`, forgetting what left the window (and the restart count with it). */
export function recordFailure(record: HealRecord, now: number, policy: HealPolicy): HealRecord {
  const recent = record.failures.filter((t) => now - t < policy.windowMs);
  return { failures: [...recent, now], restarts: recent.length === 0 ? 0 : record.restarts };
}

export function decide(record: HealRecord, policy: HealPolicy): HealDecision {
  const n = record.failures.length;
  if (n > policy.giveUpAfter) return { action: 'give_up', failures: n };
  const delayMs = backoffDelay({ initialMs: policy.baseDelayMs, maxMs: policy.maxDelayMs }, n);
  return { action: record.restarts >= policy.maxRestarts ? 'replace' : 'restart', delayMs };
}

/** The record after an attempt of `action`; a failed attempt counts as a failure too. */
export function afterAttempt(record: HealRecord, action: HealAction, ok: boolean, now: number, policy: HealPolicy): HealRecord {
  const restarts = action === 'replace' ? 0 : record.restarts + 1;
  if (ok) return { failures: record.failures, restarts };
  return { ...recordFailure(record, now, policy), restarts };
}
