import type { Clock } from '../src/scheduler.js';

/** A clock the test moves by hand; it counts the timers armed. */
export function manualClock() {
  let now = 0;
  let pending: { at: number; fn: () => void } | undefined;
  let armed = 0;
  const clock: Clock = {
    now: () => now,
    setTimer(fn, delay) {
      armed++;
      const t = { at: now + delay, fn };
      pending = t;
      return t;
    },
    clearTimer(h) {
      if (pending === h) pending = undefined;
    },
  };
  return {
    clock,
    armed: () => armed,
    hasTimer: () => pending !== undefined,
    /** Moves time forward, firing the timer whenever it is due. */
    advance(ms: number) {
      const until = now + ms;
      while (pending && pending.at <= until) {
        const t = pending;
        pending = undefined;
        now = Math.max(now, t.at);
        t.fn();
      }
      now = until;
    },
  };
}
