import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { promisify } from 'node:util';

// Where the tunnel commands run (wg, ip, wireguard-go, sshd, ssh): this machine, or a host of
// its own (a network namespace in the tests, `ip netns exec`). Files are shared either way; only
// the network differs. A test's `TestHost` has this shape, so the same code drives the tools on
// the edge and node hosts a test made; nothing else in this lib knows which host it is on.
//
// Nothing secret goes through a host's arguments or environment: private keys travel as file
// paths, or as standard input (`wg pubkey`), so an error that names the command line leaks none.

const run = promisify(execFile);

export interface CommandHost {
  /** Runs a command to completion; resolves with stdout, rejects with an error naming stderr. */
  exec(command: string, args: readonly string[], input?: string): Promise<string>;
  /**
   * Starts a long-running command with stdout and stderr piped; the pid is the command's own.
   * Given an `env`, the command gets exactly that environment.
   */
  spawn(command: string, args: readonly string[], env?: NodeJS.ProcessEnv): SpawnedCommand;
}

export interface SpawnedCommand {
  readonly pid: number;
  readonly child: ChildProcess;
}

/** The machine this process runs on. */
export const localHost: CommandHost = {
  async exec(command, args, input) {
    const child = run(command, [...args], { timeout: 30_000, maxBuffer: 16 * 1024 * 1024 });
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

/** A spawned daemon (wireguard-go) as its owner needs it: alive or not, what it said, its end. */
export interface WatchedProcess {
  readonly pid: number;
  /** Whether it has ended (on its own, stopped, or never started). */
  exited(): boolean;
  /** The tail of what it printed, for an error message. */
  output(): string;
  /** Ends it by its pid (SIGTERM, then SIGKILL after `graceMs`) and waits for its exit. */
  stop(graceMs?: number): Promise<void>;
}

const STOP_GRACE_MS = 3_000;
const OUTPUT_KEEP = 16_000;

/** Keeps the tail of a spawned command's output and gives it a stop; call right after spawn. */
export function watch(spawned: SpawnedCommand): WatchedProcess {
  const { child } = spawned;
  let out = '';
  const keep = (chunk: Buffer | string) => {
    out = (out + chunk.toString()).slice(-OUTPUT_KEEP);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  // A command that cannot be started shows up as an early exit with this message ("spawn
  // wireguard-go ENOENT"), not as an uncaught 'error'.
  child.on('error', (err) => keep(`${err.message}\n`));
  const gone = () => exited(child) || child.pid === undefined;
  return {
    pid: child.pid === undefined ? -1 : spawned.pid,
    exited: gone,
    output: () => out,
    stop: (graceMs = STOP_GRACE_MS) => (gone() ? Promise.resolve() : stopChild(child, graceMs)),
  };
}

async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  const ended = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => {
    if (!exited(child)) child.kill('SIGKILL');
  }, graceMs);
  try {
    await ended;
  } finally {
    clearTimeout(timer);
  }
}
