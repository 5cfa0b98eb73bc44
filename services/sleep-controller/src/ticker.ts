export interface Ticker {
  /** No new round starts; resolves once the round in progress (if any) has ended. */
  stop(): Promise<void>;
}

/**
 * Runs `run` again and again, `periodMs()` after the end of the previous round (read each
 * time, so a shorter idle window shortens the period at once). Rounds never overlap, so a
 * slow round delays the next instead of piling up.
 */
export function startTicker(opts: { periodMs: () => number; run: () => Promise<void>; onError: (err: unknown) => void }): Ticker {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let round: Promise<void> | undefined;

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      round = opts
        .run()
        .catch(opts.onError)
        .finally(() => {
          round = undefined;
          schedule();
        });
    }, opts.periodMs());
  };
  schedule();

  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await round;
    },
  };
}
