import { describe, expect, it } from 'vitest';
import { ERROR_MEMORY_MS, SCORE_WINDOW, ScoreWindow } from '../src/score.js';

describe('health score', () => {
  it('is 0 before any check and 100 for fast passing checks', () => {
    const w = new ScoreWindow();
    expect(w.score(0, 1000)).toBe(0);
    for (let i = 0; i < 5; i++) w.record(true, 0);
    expect(w.score(0, 1000)).toBe(100);
  });

  it('follows the pass ratio of the last checks only', () => {
    const w = new ScoreWindow();
    for (let i = 0; i < SCORE_WINDOW; i++) w.record(false, 1000);
    expect(w.score(0, 1000)).toBe(0);
    for (let i = 0; i < SCORE_WINDOW / 2; i++) w.record(true, 0);
    expect(w.score(0, 1000)).toBe(50);
    for (let i = 0; i < SCORE_WINDOW / 2; i++) w.record(true, 0);
    expect(w.score(0, 1000)).toBe(100);
  });

  it('loses up to half for latency approaching the timeout', () => {
    const w = new ScoreWindow();
    for (let i = 0; i < 4; i++) w.record(true, 500);
    expect(w.score(0, 1000)).toBe(75);
    const slow = new ScoreWindow();
    slow.record(true, 5000);
    expect(slow.score(0, 1000)).toBe(50);
  });

  it('loses 10 per passive error in the last minute, at most 50', () => {
    const w = new ScoreWindow();
    w.record(true, 0);
    w.passiveError(1000);
    w.passiveError(2000);
    expect(w.score(2000, 1000)).toBe(80);
    for (let i = 0; i < 10; i++) w.passiveError(3000);
    expect(w.score(3000, 1000)).toBe(50);
    expect(w.score(3000 + ERROR_MEMORY_MS, 1000)).toBe(100);
  });
});
