import { describe, expect, it } from 'vitest';
import { afterAttempt, decide, EMPTY_RECORD, recordFailure, type HealPolicy } from '../src/heal-policy.js';

const policy: HealPolicy = { baseDelayMs: 500, maxDelayMs: 4000, maxRestarts: 2, windowMs: 60_000, giveUpAfter: 6 };

describe('heal policy', () => {
  it('restarts a first death after the base delay', () => {
    const r = recordFailure(EMPTY_RECORD, 1000, policy);
    expect(decide(r, policy)).toEqual({ action: 'restart', delayMs: 500 });
  });

  it('doubles the delay with each failure in the window, up to the cap', () => {
    let r = EMPTY_RECORD;
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      r = recordFailure(r, 1000 + i * 100, policy);
      const d = decide(r, policy);
      if (d.action !== 'give_up') delays.push(d.delayMs);
    }
    expect(delays).toEqual([500, 1000, 2000, 4000, 4000, 4000]);
  });

  it('replaces the container once its restarts did not stick, and counts afresh after that', () => {
    let r = recordFailure(EMPTY_RECORD, 0, policy);
    r = afterAttempt(r, 'restart', true, 600, policy);
    r = recordFailure(r, 2000, policy);
    expect(decide(r, policy).action).toBe('restart');
    r = afterAttempt(r, 'restart', true, 3000, policy);
    r = recordFailure(r, 4000, policy);
    expect(decide(r, policy)).toEqual({ action: 'replace', delayMs: 2000 });
    r = afterAttempt(r, 'replace', true, 6000, policy);
    r = recordFailure(r, 7000, policy);
    expect(decide(r, policy).action).toBe('restart');
  });

  it('counts a failed restart as a restart and a failure', () => {
    let r = recordFailure(EMPTY_RECORD, 0, policy);
    r = afterAttempt(r, 'restart', false, 600, policy);
    expect(r).toEqual({ failures: [0, 600], restarts: 1 });
    r = afterAttempt(r, 'restart', false, 1700, policy);
    expect(decide(r, policy).action).toBe('replace');
  });

  it('forgets failures older than the window, restarts included', () => {
    let r = recordFailure(EMPTY_RECORD, 0, policy);
    r = afterAttempt(r, 'restart', true, 500, policy);
    r = afterAttempt(recordFailure(r, 1000, policy), 'restart', true, 1500, policy);
    r = recordFailure(r, 120_000, policy);
    expect(r).toEqual({ failures: [120_000], restarts: 0 });
    expect(decide(r, policy)).toEqual({ action: 'restart', delayMs: 500 });
  });

  it('gives up after too many failures in the window', () => {
    let r = EMPTY_RECORD;
    for (let i = 0; i <= policy.giveUpAfter; i++) r = recordFailure(r, i, policy);
    expect(decide(r, policy)).toEqual({ action: 'give_up', failures: policy.giveUpAfter + 1 });
  });
});
