import { describe, expect, it } from 'vitest';
import { Scheduler } from '../src/scheduler.js';
import { manualClock } from './manual-clock.js';

describe('scheduler', () => {
  it('runs keys in order of their due time with one timer', () => {
    const c = manualClock();
    const ran: string[] = [];
    const s = new Scheduler((k) => ran.push(`${k}@${c.clock.now()}`), c.clock, 0);
    s.schedule('c', 30);
    s.schedule('a', 10);
    s.schedule('b', 20);
    c.advance(15);
    expect(ran).toEqual(['a@10']);
    c.advance(100);
    expect(ran).toEqual(['a@10', 'b@20', 'c@30']);
    expect(c.hasTimer()).toBe(false);
  });

  it('runs everything due within the slack in one wake-up', () => {
    const c = manualClock();
    const ran: number[] = [];
    const s = new Scheduler(() => ran.push(c.clock.now()), c.clock, 5);
    for (let i = 0; i < 100; i++) s.schedule(`n${i}`, 100 + (i % 5));
    const before = c.armed();
    c.advance(200);
    expect(ran).toHaveLength(100);
    expect(new Set(ran)).toEqual(new Set([100]));
    expect(c.armed() - before).toBe(0);
  });

  it('a key scheduled again runs once, at the new time; a cancelled key does not run', () => {
    const c = manualClock();
    const ran: string[] = [];
    const s = new Scheduler((k) => ran.push(`${k}@${c.clock.now()}`), c.clock, 0);
    s.schedule('a', 10);
    s.schedule('a', 50);
    s.schedule('b', 20);
    s.cancel('b');
    c.advance(100);
    expect(ran).toEqual(['a@50']);
    expect(s.size).toBe(0);
  });

  it('keeps a steady period for keys that reschedule themselves, and stays compact', () => {
    const c = manualClock();
    let runs = 0;
    const s: Scheduler = new Scheduler(
      (k) => {
        runs++;
        s.schedule(k, c.clock.now() + 1000);
      },
      c.clock,
      0,
    );
    for (let i = 0; i < 1000; i++) s.schedule(`n${i}`, i);
    c.advance(10_000);
    // Key i ran at t = i, i+1000, … up to 10 000: eleven times for key 0, ten for the rest.
    expect(runs).toBe(11 + 999 * 10);
    expect(s.size).toBe(1000);
    expect((s as unknown as { heap: unknown[] }).heap.length).toBeLessThanOrEqual(2 * 1000 + 64);
  });

  it('stop cancels everything', () => {
    const c = manualClock();
    const ran: string[] = [];
    const s = new Scheduler((k) => ran.push(k), c.clock, 0);
    s.schedule('a', 10);
    s.stop();
    c.advance(100);
    expect(ran).toEqual([]);
    expect(c.hasTimer()).toBe(false);
  });
});
