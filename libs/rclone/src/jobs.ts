import { setTimeout as sleep } from 'node:timers/promises';
import type { Rcd } from './rcd.js';

// Copies run as rclone's own async jobs, each in a stats group of its own, so progress is read
// per job (`core/stats?group=`) and a job can be stopped (`job/stop`) without touching others.

export type CopyMode = 'sync' | 'copy';

export interface Progress {
  bytes: number;
  totalBytes: number;
  transfers: number;
  totalTransfers: number;
  /** Bytes per second, as rclone averages it. */
  speed: number;
  /** Seconds left, as rclone estimates it; null when it cannot yet. */
  etaSec: number | null;
  errors: number;
}

export interface JobStatus {
  id: number;
  finished: boolean;
  success: boolean;
  error: string;
  duration: number;
}

/** Starts `sync/<mode>` from srcFs to dstFs as an async job in its own stats group; its id. */
export async function startCopy(rcd: Rcd, mode: CopyMode, p: { srcFs: string; dstFs: string; group: string; config?: object }): Promise<number> {
  const started = await rcd.call<{ jobid: number }>(`sync/${mode}`, { srcFs: p.srcFs, dstFs: p.dstFs, _async: true, _group: p.group, ...(p.config ? { _config: p.config } : {}) });
  return started.jobid;
}

export async function progressOf(rcd: Rcd, group: string): Promise<Progress> {
  const s = await rcd.call<{ bytes: number; totalBytes: number; transfers: number; totalTransfers: number; speed: number; eta: number | null; errors: number }>('core/stats', {
    group,
  });
  return { bytes: s.bytes, totalBytes: s.totalBytes, transfers: s.transfers, totalTransfers: s.totalTransfers, speed: s.speed, etaSec: s.eta ?? null, errors: s.errors };
}

/**
 * Waits for the job to end, reading its progress every `intervalMs` (at most once a second is
 * what the events carry) and handing it to `onProgress`. Bounded by `timeoutMs`.
 */
export async function waitForJob(rcd: Rcd, jobid: number, group: string, o: { intervalMs?: number; timeoutMs: number; onProgress?: (p: Progress) => void }): Promise<JobStatus> {
  const deadline = Date.now() + o.timeoutMs;
  const interval = o.intervalMs ?? 1000;
  for (;;) {
    const status = await rcd.call<JobStatus>('job/status', { jobid });
    if (o.onProgress) o.onProgress(await progressOf(rcd, group));
    if (status.finished) return status;
    if (Date.now() > deadline) throw new Error(`rclone job ${jobid} not finished within ${o.timeoutMs} ms`);
    await sleep(interval);
  }
}

export async function stopJob(rcd: Rcd, jobid: number): Promise<void> {
  await rcd.call('job/stop', { jobid });
}
