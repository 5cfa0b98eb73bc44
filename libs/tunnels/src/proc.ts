import { readdir, readFile } from 'node:fs/promises';
import { parseStatStartTime } from './ssh/sessions.js';

// Processes as /proc shows them: what the edge's session warden, its sshd's stop and
// tunnel-manager's clean-up after a crash need to signal only processes that are theirs.
// A pid alone can be reused; a pid with its start time names one process.

/** Sends a signal; false when the process is gone. */
export function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

export function readProc(path: string): Promise<string> {
  return readFile(path, 'utf8').catch(() => '');
}

/** When the process started (clock ticks since boot), undefined when it is gone. */
export async function startTimeOf(pid: number): Promise<number | undefined> {
  return parseStatStartTime(await readProc(`/proc/${pid}/stat`));
}

/** Running, and not a zombie waiting to be reaped. */
export async function isAlive(pid: number): Promise<boolean> {
  const stat = await readProc(`/proc/${pid}/stat`);
  return stat !== '' && !/^\d+ \(.*\) Z/s.test(stat);
}

/** The process's command line, one element per argument. */
export async function argvOf(pid: number): Promise<string[]> {
  return (await readProc(`/proc/${pid}/cmdline`)).split('\0').filter(Boolean);
}

/** A process's children (every thread's), each with its start time. */
export async function childrenOf(pid: number): Promise<Map<number, number>> {
  const tasks = await readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
  const pids = new Set<number>();
  for (const t of tasks) {
    for (const c of (await readProc(`/proc/${pid}/task/${t}/children`)).split(/\s+/)) if (c) pids.add(Number(c));
  }
  const out = new Map<number, number>();
  for (const c of pids) {
    const start = await startTimeOf(c);
    if (start !== undefined) out.set(c, start);
  }
  return out;
}
