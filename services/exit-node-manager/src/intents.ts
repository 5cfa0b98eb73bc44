import type { DockerOps } from './docker-ops.js';

/**
 * Containers this manager is stopping or removing itself, so the `die` event that follows is
 * not taken for a crash. An entry outlives its call briefly: Docker may deliver the event
 * just after the stop call returns.
 */
export interface Intents {
  isExpected(containerId: string): boolean;
  /** Wraps stop and remove of `ops` so every stop and removal is announced first. */
  track(ops: DockerOps): DockerOps;
}

export function createIntents(lingerMs = 5_000): Intents {
  const pending = new Map<string, number>();
  const expire = new Map<string, NodeJS.Timeout>();

  const begin = (id: string) => {
    pending.set(id, (pending.get(id) ?? 0) + 1);
    clearTimeout(expire.get(id));
  };
  const end = (id: string) => {
    const left = (pending.get(id) ?? 1) - 1;
    pending.set(id, Math.max(0, left));
    if (left > 0) return;
    const timer = setTimeout(() => {
      pending.delete(id);
      expire.delete(id);
    }, lingerMs);
    timer.unref();
    expire.set(id, timer);
  };
  const around =
    <A extends unknown[]>(fn: (id: string, ...rest: A) => Promise<void>) =>
    async (id: string, ...rest: A) => {
      begin(id);
      try {
        await fn(id, ...rest);
      } finally {
        end(id);
      }
    };

  return {
    isExpected: (id) => pending.has(id),
    track: (ops) => ({ ...ops, stop: around(ops.stop), remove: around(ops.remove) }),
  };
}
