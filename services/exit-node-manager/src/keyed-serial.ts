/** Runs `fn` once every earlier call with the same key has settled. */
export type Serial = <T>(key: string, fn: () => Promise<T>) => Promise<T>;

/**
 * Runs work for one key at a time. Two commands for the same pool (a scale arriving while
 * the create is still starting containers) would otherwise both find no container for a node
 * and both create one.
 */
export function keyedSerial(): Serial {
  const tails = new Map<string, Promise<void>>();
  return async <T>(key: string, fn: () => Promise<T>): Promise<T> => {
    const previous = tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const tail = previous.then(() => new Promise<void>((resolve) => (release = resolve)));
    tails.set(key, tail);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (tails.get(key) === tail) tails.delete(key);
    }
  };
}
