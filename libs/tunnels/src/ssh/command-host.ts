import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * Where the OpenSSH tools run: this machine, or a host of its own (a network namespace in the
 * tests). Files are shared either way; only the network differs. A test's `TestHost` has this
 * shape, so the same code drives sshd and ssh on the edge and node hosts a test made.
 */
export interface CommandHost {
  /** Runs a command to completion; resolves with stdout, rejects with an error naming stderr. */
  exec(command: string, args: readonly string[], input?: string): Promise<string>;
  /** Starts a long-running command with stdout and stderr piped; the pid is the command's own. */
  spawn(command: string, args: readonly string[], env?: NodeJS.ProcessEnv): SpawnedCommand;
}

export interface SpawnedCommand {
  readonly pid: number;
  readonly child: ChildProcess;
}

/** The machine this process runs on. */
export const localHost: CommandHost = {
  async exec(command, args, input) {
    const child = run(command, [...args], { timeout: 30_000, maxBuffer: 4 * 1024 * 1024 });
    if (input !== undefined) child.child.stdin!.end(input);
    try {
      return (await child).stdout;
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`${command} ${args.join(' ')}: ${e.stderr?.trim() || e.message}`);
    }
  },
  spawn(command, args, env) {
    const child = spawn(command, [...args], { env: env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    return { pid: child.pid!, child };
  },
};

/** Whether a child has exited (or was never started). */
export function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}
