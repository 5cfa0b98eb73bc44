import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { endLeftovers, forgetProcess, isAlive, recordProcess } from '../src/index.js';

// Real processes (node, idle for 30 s, with the mark in its command line), ended only if the pid file's pid, start time and mark all still match.
describe('pid files: what a SIGKILLed run left, ended at the next start', () => {
  const children: ChildProcess[] = [];
  const dirs: string[] = [];
  const sleeper = (mark: string) => {
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30_000)', mark], { stdio: 'ignore' });
    children.push(child);
    return child;
  };
  const stateDir = async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sy-pidfiles-'));
    dirs.push(dir);
    return dir;
  };
  afterEach(async () => {
    for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });

  it('ends a process whose command line holds its mark (an interface name), and one that names the state directory', async () => {
    const dir = await stateDir();
    const mark = `sywg${randomBytes(3).toString('hex')}`;
    const wg = sleeper(mark);
    const ssh = sleeper(`${dir}/keys/t.ssh.1`);
    await recordProcess(dir, 'wireguard-go', wg.pid!, mark);
    await recordProcess(dir, 't.ssh.1', ssh.pid!);
    const exits = [once(wg, 'exit'), once(ssh, 'exit')];
    expect((await endLeftovers(dir)).sort()).toEqual([wg.pid, ssh.pid].sort());
    await Promise.all(exits);
    expect(await readdir(join(dir, 'pids'))).toEqual([]);
  });

  it('leaves alone a process whose command line lacks the mark (its pid reused), and forgets the file', async () => {
    const dir = await stateDir();
    const other = sleeper('someone-else');
    await recordProcess(dir, 'wireguard-go', other.pid!, 'sywg000000');
    expect(await endLeftovers(dir)).toEqual([]);
    expect(await isAlive(other.pid!)).toBe(true);
    expect(await readdir(join(dir, 'pids'))).toEqual([]);
  });

  it('forgets a process that ended on purpose', async () => {
    const dir = await stateDir();
    const child = sleeper(`${dir}/x`);
    await recordProcess(dir, 'x', child.pid!);
    await forgetProcess(dir, 'x');
    expect(await endLeftovers(dir)).toEqual([]);
    expect(await isAlive(child.pid!)).toBe(true);
  });
});
