import type { HealthStatus } from '@switchyard/contracts';

/**
 * One node's HAProxy-style check state. `rise` consecutive passes make it healthy, `fall`
 * consecutive failures unhealthy; failures within the grace period after a (re)start do not
 * count. The functions below change the state in place and return the new status when it
 * changed, so the caller publishes exactly the transitions.
 */
export interface CheckState {
  status: HealthStatus;
  okStreak: number;
  failStreak: number;
  /** Until this time (ms, the monitor's clock) failed checks are not counted. */
  graceUntil: number;
  reason: string;
}

export interface RiseFall {
  readonly rise: number;
  readonly fall: number;
}

export function newCheckState(): CheckState {
  return { status: 'unknown', okStreak: 0, failStreak: 0, graceUntil: 0, reason: 'not checked yet' };
}

function become(s: CheckState, status: HealthStatus, reason: string): HealthStatus | null {
  s.reason = reason;
  if (s.status === status) return null;
  s.status = status;
  return status;
}

export function checkPassed(s: CheckState, spec: RiseFall): HealthStatus | null {
  s.failStreak = 0;
  s.okStreak++;
  if (s.status === 'healthy') return null;
  if (s.okStreak >= spec.rise) return become(s, 'healthy', `${s.okStreak} ${s.okStreak === 1 ? 'check' : 'checks'} passed`);
  s.reason = `${s.okStreak} of ${spec.rise} checks passed`;
  return null;
}

export function checkFailed(s: CheckState, spec: RiseFall, reason: string, now: number): HealthStatus | null {
  // Even in grace a failure breaks a run of passes: rise means consecutive.
  s.okStreak = 0;
  if (now < s.graceUntil) return null;
  s.failStreak++;
  if (s.status === 'unhealthy') {
    s.reason = reason;
    return null;
  }
  if (s.failStreak >= spec.fall) return become(s, 'unhealthy', reason);
  return null;
}

/** A passive signal (container died, Docker health, connection failures): down at once. */
export function markDown(s: CheckState, reason: string): HealthStatus | null {
  s.okStreak = 0;
  s.failStreak = 0;
  return become(s, 'unhealthy', reason);
}

/**
 * Active checks stopped for a reason other than the node's health (its pool sleeps when idle):
 * what the checks had found no longer holds, so unknown, not a transition to publish.
 */
export function unchecked(s: CheckState, reason: string): HealthStatus | null {
  s.okStreak = 0;
  s.failStreak = 0;
  return become(s, 'unknown', reason);
}

/**
 * The node (re)started: counting starts over and failures are forgiven for `graceMs`. Its
 * status stays: a node that was down needs `rise` passes to be healthy again, a new one
 * stays unknown until its checks decide.
 */
export function restarted(s: CheckState, now: number, graceMs: number): void {
  s.okStreak = 0;
  s.failStreak = 0;
  s.graceUntil = now + graceMs;
  if (s.status === 'unhealthy') s.reason = 'started; waiting for passing checks';
}
