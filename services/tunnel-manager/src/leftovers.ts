import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

// The edge's sshd and the nodes' ssh clients outlive a tunnel-manager that was SIGKILLed: they
// would hold the sshd port and the forward ports, so the next start could build nothing. Each
// one's pid is kept in a file; the next start ends those that are still ours (their command
// line names the state directory) and nothing else.

const dirOf = (stateDir: string) => join(stateDir, 'pids');

export async function recordProcess(stateDir: string, name: string, pid: number): Promise<void> {
  await mkdir(dirOf(stateDir), { recursive: true, mode: 0o700 });
  await writeFile(join(dirOf(stateDir), `${name}.pid`), String(pid), { mode: 0o600 });
}

export async function forgetProcess(stateDir: string, name: string): Promise<void> {
  await rm(join(dirOf(stateDir), `${name}.pid`), { force: true });
}

/** Ends the processes an earlier run left, with an sshd's sessions; returns their pids. */
export async function endLeftovers(stateDir: string): Promise<number[]> {
  const files = await readdir(dirOf(stateDir)).catch(() => [] as string[]);
  const ended: number[] = [];
  for (const file of files) {
    const pid = Number(await readFile(join(dirOf(stateDir), file), 'utf8').catch(() => ''));
    if (Number.isInteger(pid) && pid > 1 && (await cmdline(pid)).includes(stateDir)) {
      const children = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').then(
        (t) => t.split(/\s+/).filter(Boolean).map(Number),
        () => [] as number[],
      );
      for (const p of [pid, ...children]) signal(p, 'SIGTERM');
      for (let i = 0; i < 40 && (await alive(pid)); i++) await sleep(50);
      if (await alive(pid)) signal(pid, 'SIGKILL');
      ended.push(pid);
    }
    await rm(join(dirOf(stateDir), file), { force: true });
  }
  return ended;
}

function cmdline(pid: number): Promise<string> {
  return readFile(`/proc/${pid}/cmdline`, 'utf8').then(
    (t) => t.replaceAll('\0', ' '),
    () => '',
  );
}

async function alive(pid: number): Promise<boolean> {
  // A zombie still has its /proc entry: only its state says it is gone.
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat !== '' && !/^\d+ \(.*\) Z/.test(stat);
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Gone already.
  }
}
