import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it, vi } from 'vitest';
import { startTicker } from '../src/ticker.js';

describe('startTicker', () => {
  it('never overlaps rounds, reads the period each time, and stop waits for the round in hand', async () => {
    let running = 0;
    let maxRunning = 0;
    let rounds = 0;
    let period = 5;
    let release!: () => void;
    const ticker = startTicker({
      periodMs: () => period,
      run: async () => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        rounds++;
        if (rounds === 3) await new Promise<void>((r) => (release = r));
        else await sleep(10);
        running--;
      },
      onError: () => undefined,
    });
    await vi.waitFor(() => expect(rounds).toBeGreaterThanOrEqual(3), { timeout: 1000, interval: 5 });
    expect(rounds).toBe(3);
    let stopped = false;
    const stopping = ticker.stop().then(() => (stopped = true));
    await sleep(20);
    expect(stopped).toBe(false);
    release();
    await stopping;
    period = 1;
    await sleep(30);
    expect(rounds).toBe(3);
    expect(maxRunning).toBe(1);
  });

  it('goes on after a failed round', async () => {
    const errors: unknown[] = [];
    let rounds = 0;
    const ticker = startTicker({
      periodMs: () => 2,
      run: async () => {
        rounds++;
        throw new Error(`round ${rounds}`);
      },
      onError: (err) => errors.push(err),
    });
    await vi.waitFor(() => expect(rounds).toBeGreaterThanOrEqual(3), { timeout: 1000, interval: 5 });
    await ticker.stop();
    expect(rounds).toBeGreaterThanOrEqual(3);
    expect((errors[0] as Error).message).toBe('round 1');
  });
});
