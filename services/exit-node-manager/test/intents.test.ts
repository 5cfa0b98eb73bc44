import { describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DockerOps } from '../src/docker-ops.js';
import { createIntents } from '../src/intents.js';

describe('intents', () => {
  it("expects a container's die during its stop or removal and for a short while after, not later", async () => {
    const intents = createIntents(50);
    let during = false;
    const ops = intents.track({
      stop: async (id: string) => {
        during = intents.isExpected(id);
      },
      remove: async () => undefined,
    } as unknown as DockerOps);
    expect(intents.isExpected('c1')).toBe(false);
    await ops.stop('c1');
    expect(during).toBe(true);
    expect(intents.isExpected('c1')).toBe(true);
    await sleep(120);
    expect(intents.isExpected('c1')).toBe(false);
  });

  it('keeps expecting while a second stop of the same container is under way', async () => {
    const intents = createIntents(30);
    let release!: () => void;
    const slow = new Promise<void>((resolve) => (release = resolve));
    const ops = intents.track({ stop: () => slow, remove: async () => undefined } as unknown as DockerOps);
    const first = ops.stop('c2');
    await ops.remove('c2');
    await sleep(80);
    expect(intents.isExpected('c2')).toBe(true);
    release();
    await first;
    await sleep(80);
    expect(intents.isExpected('c2')).toBe(false);
  });
});
