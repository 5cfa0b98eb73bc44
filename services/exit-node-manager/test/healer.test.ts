import { describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { OrderFailure } from '@switchyard/service-kit';
import { createHealer } from '../src/healer.js';
import type { HealPolicy } from '../src/heal-policy.js';

const policy: HealPolicy = { baseDelayMs: 10, maxDelayMs: 40, maxRestarts: 1, windowMs: 60_000, giveUpAfter: 4 };
const log = { info: () => undefined, warn: () => undefined };

describe('healer', () => {
  it('restarts a dead node once, however many deaths arrive while it is at it', async () => {
    const calls: string[] = [];
    const healer = createHealer({ heal: async (_t, n, action) => (calls.push(`${n}:${action}`), 'healed') }, policy, log);
    healer.nodeDied('t', 'n1');
    healer.nodeDied('t', 'n1');
    await sleep(100);
    expect(calls).toEqual(['n1:restart']);
    await healer.stop();
  });

  it('restarts first, replaces when the restarted container dies again', async () => {
    const calls: string[] = [];
    const healer = createHealer({ heal: async (_t, _n, action) => (calls.push(action), 'healed') }, policy, log);
    healer.nodeDied('t', 'n1');
    await sleep(60);
    healer.nodeDied('t', 'n1');
    await sleep(100);
    expect(calls).toEqual(['restart', 'replace']);
    await healer.stop();
  });

  it('keeps the deaths reported while an attempt waited: they count towards giving up', async () => {
    const calls: string[] = [];
    const healer = createHealer({ heal: async (_t, _n, action) => (calls.push(action), 'healed') }, policy, log);
    for (let i = 0; i < policy.giveUpAfter; i++) healer.nodeDied('t', 'n1');
    await sleep(60);
    expect(calls).toEqual(['restart']);
    // One more death makes giveUpAfter + 1 within the window: no further attempt.
    healer.nodeDied('t', 'n1');
    await sleep(100);
    expect(calls).toEqual(['restart']);
    await healer.stop();
  });

  it('tries again after a failed attempt, and gives up after the policy says so', async () => {
    const calls: string[] = [];
    const healer = createHealer(
      {
        heal: async (_t, _n, action) => {
          calls.push(action);
          throw new OrderFailure('no');
        },
      },
      policy,
      log,
    );
    healer.nodeDied('t', 'n1');
    await sleep(400);
    // One death + failures up to giveUpAfter; the second attempt is a replacement (maxRestarts 1).
    expect(calls).toEqual(['restart', 'replace', 'restart', 'replace']);
    await healer.stop();
  });
});
