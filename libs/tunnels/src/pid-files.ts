import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { argvOf, childrenOf, isAlive, signal, startTimeOf } from './proc.js';

// The edge's sshd, the nodes' ssh clients and wireguard-go outlive a tunnel-manager that was
// SIGKILLed: they would hold the sshd port, the forward ports and the WireGuard port, so the next
// start could build nothing. Each one's pid, start time and mark are kept in a file; the next
// start ends those that are still the same process and ours (their command line holds the mark:
// a path in the state directory by default, as sshd rewrites its command line into one string;
// wireguard-go's interface name, unique on the machine), nothing else.

const dirOf = (stateDir: string) => join(stateDir, 'pids');

export async function recordProcess(stateDir: string, name: string, pid: number, mark = `${resolve(stateDir)}/`): Promise<void> {
  const started = await startTimeOf(pid);
  if (started === undefined) return;
  await mkdir(dirOf(stateDir), { recursive: true, mode: 0o700 });
  await writeFile(join(dirOf(stateDir), `${name}.pid`), `${pid} ${started} ${mark}`, { mode: 0o600 });
}

export async function forgetProcess(stateDir: string, name: string): Promise<void> {
  await rm(join(dirOf(stateDir), `${name}.pid`), { force: true });
}

/** Ends the processes an earlier run left, with an sshd's sessions; returns their pids. */
export async function endLeftovers(stateDir: string): Promise<number[]> {
  const files = await readdir(dirOf(stateDir)).catch(() => [] as string[]);
  const ended: number[] = [];
  for (const file of files) {
    const [pidText, startedText, ...rest] = (await readFile(join(dirOf(stateDir), file), 'utf8').catch(() => '')).split(' ');
    const [pid, started] = [Number(pidText), Number(startedText)];
    const mark = rest.join(' ') || `${resolve(stateDir)}/`;
    if (pid && startedText && (await startTimeOf(pid)) === started && (await argvOf(pid)).join(' ').includes(mark)) {
      const children = await childrenOf(pid);
      signal(pid, 'SIGTERM');
      for (const child of children.keys()) signal(child, 'SIGTERM');
      for (let i = 0; i < 40 && (await isAlive(pid)); i++) await sleep(50);
      if (await isAlive(pid)) signal(pid, 'SIGKILL');
      ended.push(pid);
    }
    await rm(join(dirOf(stateDir), file), { force: true });
  }
  return ended;
}
