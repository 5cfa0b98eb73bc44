/**
 * Keeps a cache built from snapshots fresh: one rebuild at start, one whenever asked (NATS
 * reconnected), one every `periodMs`. Requests coalesce — at most one rebuild runs and at
 * most one more waits — and a failed rebuild is retried after `retryMs` rather than waiting
 * a whole period.
 */
export class Resync {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(
    private readonly rebuild: () => Promise<void>,
    private readonly opts: { periodMs: number; retryMs: number; onError: (err: Error) => void },
  ) {}

  /** Rebuilds now (or right after the rebuild in progress). */
  request(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.running = this.once().finally(() => {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        this.request();
      }
    });
  }

  /** Resolves after the rebuild in progress, if any. */
  async settled(): Promise<void> {
    while (this.running) await this.running;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.settled();
  }

  private async once(): Promise<void> {
    let next = this.opts.periodMs;
    try {
      await this.rebuild();
    } catch (err) {
      this.opts.onError(err as Error);
      next = this.opts.retryMs;
    }
    if (!this.stopped) {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.request(), next).unref();
    }
  }
}
