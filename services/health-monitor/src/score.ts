/** Check results the score looks back on. */
export const SCORE_WINDOW = 20;
/** How long a passive error (died, connection failure, Docker unhealthy) lowers the score. */
export const ERROR_MEMORY_MS = 60_000;
const ERROR_PENALTY = 10;
const MAX_PENALTY = 50;

/**
 * The recent checks of one node, in a fixed ring so a check allocates nothing.
 *
 *   score = round(100 × passRatio × latencyFactor) − min(50, 10 × passiveErrorsInLastMinute)
 *   latencyFactor = 1 − 0.5 × min(1, meanLatencyOfPasses / timeoutMs)
 *
 * clamped to 0–100; no checks yet → 0.
 */
export class ScoreWindow {
  private readonly ok = new Uint8Array(SCORE_WINDOW);
  private readonly latency = new Float64Array(SCORE_WINDOW);
  private next = 0;
  private count = 0;
  private errors: number[] = [];

  record(passed: boolean, latencyMs: number): void {
    this.ok[this.next] = passed ? 1 : 0;
    this.latency[this.next] = latencyMs;
    this.next = (this.next + 1) % SCORE_WINDOW;
    if (this.count < SCORE_WINDOW) this.count++;
  }

  passiveError(now: number): void {
    this.errors.push(now);
    if (this.errors.length > MAX_PENALTY / ERROR_PENALTY) this.errors.shift();
  }

  score(now: number, timeoutMs: number): number {
    if (this.count === 0) return 0;
    let passes = 0;
    let latencySum = 0;
    for (let i = 0; i < this.count; i++) {
      if (this.ok[i]) {
        passes++;
        latencySum += this.latency[i]!;
      }
    }
    const meanLatency = passes ? latencySum / passes : 0;
    const latencyFactor = 1 - 0.5 * Math.min(1, meanLatency / Math.max(1, timeoutMs));
    const recentErrors = this.errors.filter((t) => now - t < ERROR_MEMORY_MS).length;
    const raw = Math.round(100 * (passes / this.count) * latencyFactor) - Math.min(MAX_PENALTY, ERROR_PENALTY * recentErrors);
    return Math.max(0, Math.min(100, raw));
  }
}
