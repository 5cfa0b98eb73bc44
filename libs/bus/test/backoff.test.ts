import { describe, expect, it } from 'vitest';
import { CONSUMERS } from '@switchyard/contracts';
import { backoffDelay, REDELIVERY, redeliverySchedule } from '../src/backoff.js';

describe('backoffDelay', () => {
  it('starts at initialMs, doubles, and stops growing at maxMs', () => {
    const policy = { initialMs: 500, maxMs: 30_000 };
    expect([1, 2, 3, 6, 7, 8, 1000].map((n) => backoffDelay(policy, n))).toEqual([500, 1000, 2000, 16_000, 30_000, 30_000, 30_000]);
  });

  it('takes a growth factor, and treats attempts below 1 as the first', () => {
    expect(backoffDelay({ initialMs: 100, maxMs: 10_000, factor: 3 }, 3)).toBe(900);
    expect(backoffDelay({ initialMs: 100, maxMs: 10_000 }, 0)).toBe(100);
  });
});

describe('the redelivery schedule', () => {
  const MINUTE = 60_000;

  it('waits 1 s, 2 s, 4 s, … and then once a minute, never longer', () => {
    expect(redeliverySchedule(12)).toEqual([1000, 2000, 4000, 8000, 16_000, 32_000, MINUTE, MINUTE, MINUTE, MINUTE, MINUTE]);
  });

  it.each(Object.entries(CONSUMERS))('gives %s at least five minutes before it dead-letters', (_name, def) => {
    const schedule = redeliverySchedule(def.maxDeliver, REDELIVERY);
    const span = schedule.reduce((a, b) => a + b, 0);
    expect(span).toBeGreaterThanOrEqual(5 * MINUTE);
    expect(Math.max(...schedule)).toBeLessThanOrEqual(MINUTE);
  });
});
