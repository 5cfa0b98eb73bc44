export interface Clock {
  now(): number;
  setTimer(fn: () => void, delayMs: number): unknown;
  clearTimer(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimer: (fn, delayMs) => setTimeout(fn, delayMs).unref(),
  clearTimer: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

interface Entry {
  at: number;
  key: string;
  seq: number;
}

/**
 * Runs `run(key, dueAt)` once at the time each key was scheduled for: a binary min-heap of due times
 * and a single timer armed for the earliest, so a thousand nodes cost one timer, not a
 * thousand intervals. Keys due within `slackMs` of a wake-up run in the same wake-up.
 * Rescheduling or cancelling a key leaves its old entry in the heap, skipped when popped
 * (the heap is compacted when stale entries pile up).
 */
export class Scheduler {
  private heap: Entry[] = [];
  private readonly live = new Map<string, number>();
  private seq = 0;
  private timer: unknown;
  private armedAt = Infinity;
  private stopped = false;
  private firing = false;

  constructor(
    private readonly run: (key: string, dueAt: number) => void,
    private readonly clock: Clock = systemClock,
    private readonly slackMs = 4,
  ) {}

  get size(): number {
    return this.live.size;
  }

  has(key: string): boolean {
    return this.live.has(key);
  }

  schedule(key: string, at: number): void {
    if (this.stopped) return;
    const seq = ++this.seq;
    this.live.set(key, seq);
    this.push({ at, key, seq });
    if (this.heap.length > 2 * this.live.size + 64) this.compact();
    if (!this.firing && at < this.armedAt) this.arm();
  }

  cancel(key: string): void {
    this.live.delete(key);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.heap = [];
    this.live.clear();
  }

  private arm(): void {
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.armedAt = Infinity;
    const top = this.heap[0];
    if (!top || this.stopped) return;
    this.armedAt = top.at;
    this.timer = this.clock.setTimer(() => this.fire(), Math.max(0, top.at - this.clock.now()));
  }

  private fire(): void {
    this.timer = undefined;
    this.armedAt = Infinity;
    const horizon = this.clock.now() + this.slackMs;
    // Keys run now may schedule themselves again; those land after the horizon unless their
    // interval is shorter than the slack, and the bound keeps a wake-up finite either way.
    let budget = this.heap.length;
    this.firing = true;
    try {
      while (budget-- > 0 && this.heap.length > 0 && this.heap[0]!.at <= horizon) {
        const e = this.pop()!;
        if (this.live.get(e.key) !== e.seq) continue;
        this.live.delete(e.key);
        this.run(e.key, e.at);
      }
    } finally {
      this.firing = false;
      this.arm();
    }
  }

  private compact(): void {
    this.heap = this.heap.filter((e) => this.live.get(e.key) === e.seq);
    for (let i = (this.heap.length >> 1) - 1; i >= 0; i--) this.down(i);
  }

  private push(e: Entry): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (h[parent]!.at <= e.at) break;
      h[i] = h[parent]!;
      i = parent;
    }
    h[i] = e;
  }

  private pop(): Entry | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      this.down(0);
    }
    return top;
  }

  private down(i: number): void {
    const h = this.heap;
    const e = h[i]!;
    const n = h.length;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && h[child + 1]!.at < h[child]!.at) child++;
      if (h[child]!.at >= e.at) break;
      h[i] = h[child]!;
      i = child;
    }
    h[i] = e;
  }
}
