import { backoffDelay, type Backoff } from '@switchyard/bus';

export interface ResyncOptions {
  /** Rebuild this often even when nothing asks; omitted, only on request. */
  readonly periodMs?: number;
  /** After a failed rebuild, the next is tried with this backoff; omitted, at the next request or period. */
  readonly retry?: Backoff;
  readonly onError: (err: Error, failures: number) => void;
}

/**
 * The retry of a failed rebuild unless a service says otherwise. A cache that could not be
 * built routes or checks blind, and a snapshot request to an absent owner costs nothing, so
 * the retry stays at least once a second: a service catches up within ~1 s of the owner's return.
 */
export const REBUILD_RETRY: Backoff = { initialMs: 250, maxMs: 1000 };

/**
 * Keeps a cache built from snapshots fresh: one rebuild at start, one whenever asked (NATS
 * reconnected), one every `periodMs`. Requests coalesce — at most one rebuild runs and at
 * most one more waits — and a failed rebuild is retried with backoff rather than waiting a
 * whole period.
 */
export class Resync {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private failures = 0;

  constructor(
    private readonly rebuild: () => Promise<void>,
    private readonly opts: ResyncOptions,
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
      this.failures = 0;
    } catch (err) {
      this.failures++;
      this.opts.onError(err instanceof Error ? err : new Error(String(err)), this.failures);
      if (this.opts.retry) next = backoffDelay(this.opts.retry, this.failures);
    }
    if (!this.stopped && next !== undefined) {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.request(), next).unref();
    }
  }
}
