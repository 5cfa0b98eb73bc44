import { describe, expect, it } from 'vitest';
import { checkFailed, checkPassed, markDown, newCheckState, restarted } from '../src/state.js';

const spec = { rise: 2, fall: 3 };

describe('check state (HAProxy rise/fall)', () => {
  it('starts unknown and needs rise consecutive passes to be healthy', () => {
    const s = newCheckState();
    expect(s.status).toBe('unknown');
    expect(checkPassed(s, spec)).toBeNull();
    expect(checkPassed(s, spec)).toBe('healthy');
    expect(checkPassed(s, spec)).toBeNull();
  });

  it('needs fall consecutive failures to go down; a pass in between starts the count over', () => {
    const s = newCheckState();
    checkPassed(s, spec);
    checkPassed(s, spec);
    expect(checkFailed(s, spec, 'tcp: ECONNREFUSED', 0)).toBeNull();
    expect(checkFailed(s, spec, 'tcp: ECONNREFUSED', 0)).toBeNull();
    checkPassed(s, spec);
    expect(checkFailed(s, spec, 'x', 0)).toBeNull();
    expect(checkFailed(s, spec, 'x', 0)).toBeNull();
    expect(checkFailed(s, spec, 'tcp: ECONNREFUSED', 0)).toBe('unhealthy');
    expect(s.reason).toBe('tcp: ECONNREFUSED');
  });

  it('goes from unknown to unhealthy after fall failures', () => {
    const s = newCheckState();
    checkFailed(s, spec, 'a', 0);
    checkFailed(s, spec, 'b', 0);
    expect(checkFailed(s, spec, 'c', 0)).toBe('unhealthy');
  });

  it('does not count failures during the grace period after a start, but they break a run of passes', () => {
    const s = newCheckState();
    restarted(s, 1000, 500);
    for (let i = 0; i < 10; i++) expect(checkFailed(s, spec, 'refused', 1200)).toBeNull();
    expect(s.status).toBe('unknown');
    checkPassed(s, spec);
    checkFailed(s, spec, 'refused', 1400);
    expect(checkPassed(s, spec)).toBeNull();
    expect(checkPassed(s, spec)).toBe('healthy');
    // After the grace period failures count again.
    checkFailed(s, spec, 'refused', 1500);
    checkFailed(s, spec, 'refused', 1600);
    expect(checkFailed(s, spec, 'refused', 1700)).toBe('unhealthy');
  });

  it('a passive signal marks a node down at once, and rise passes are needed to come back', () => {
    const s = newCheckState();
    checkPassed(s, spec);
    checkPassed(s, spec);
    expect(markDown(s, 'container died')).toBe('unhealthy');
    expect(markDown(s, 'container died again')).toBeNull();
    restarted(s, 0, 0);
    expect(s.status).toBe('unhealthy');
    expect(checkPassed(s, spec)).toBeNull();
    expect(checkPassed(s, spec)).toBe('healthy');
  });

  it('a passive signal also resets a run of passes towards rise', () => {
    const s = newCheckState();
    markDown(s, 'died');
    checkPassed(s, spec);
    markDown(s, 'connection failures');
    expect(checkPassed(s, spec)).toBeNull();
    expect(checkPassed(s, spec)).toBe('healthy');
  });
});
