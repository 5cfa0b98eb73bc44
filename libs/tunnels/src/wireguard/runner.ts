import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';

// Where the WireGuard commands run. tunnel-manager runs them on its own host (localRunner);
// tests hand in a runner that runs them inside a network namespace of their own (`ip netns
// exec`). Nothing in this folder knows which: that is the runner's whole job.
//
// Nothing secret goes through a runner's arguments or environment: private keys travel as file
// paths, or as standard input (`wg pubkey`), so an error that names the command line leaks none.

export interface ExecOptions {
  /** Written to the command's standard input, then closed. */
  input?: string;
  /** The command is killed after this long; 30 s unless given. */
  timeoutMs?: number;
}

/** Runs a command to completion: resolves with its stdout, rejects naming the command and its stderr. */
export type HostExec = (command: string, args: readonly string[], opts?: ExecOptions) => Promise<string>;

/** A long-running command (wireguard-go) started by a runner, known by its pid. */
export interface HostProcess {
  readonly pid: number;
  /** Whether it has ended (on its own or stopped). */
  exited(): boolean;
  /** The tail of what it printed, for an error message. */
  output(): string;
  /** Ends it by its pid (SIGTERM, then SIGKILL after a grace period) and waits for its exit. */
  stop(): Promise<void>;
}

/** Starts a long-running command with exactly `env` as its environment. */
export type HostSpawn = (command: string, args: readonly string[], env: NodeJS.ProcessEnv) => HostProcess;

export interface HostRunner {
  readonly exec: HostExec;
  readonly spawn: HostSpawn;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 3_000;
const OUTPUT_KEEP = 16_000;

/** Ends a child by its pid: SIGTERM, SIGKILL after `graceMs`, resolved once it has exited. */
async function stopChild(child: ChildProcess, graceMs = STOP_GRACE_MS): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }, graceMs);
  try {
    await exited;
  } finally {
    clearTimeout(timer);
  }
}

/** Runs commands on this host, as they are. */
export function localRunner(): HostRunner {
  const exec: HostExec = (command, args, opts = {}) =>
    new Promise((resolve, reject) => {
      const child = execFile(command, args, { timeout: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`${command} ${args.join(' ')}: ${String(stderr).trim() || err.message}`));
        else resolve(String(stdout));
      });
      if (opts.input !== undefined) child.stdin!.end(opts.input);
    });
  const start: HostSpawn = (command, args, env) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const keep = (chunk: Buffer) => {
      out = (out + chunk.toString()).slice(-OUTPUT_KEEP);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    // A command that cannot be started shows up as an early exit with this message.
    child.on('error', (err) => keep(Buffer.from(`${command}: ${err.message}\n`)));
    return {
      pid: child.pid ?? -1,
      exited: () => child.exitCode !== null || child.signalCode !== null || child.pid === undefined,
      output: () => out,
      stop: () => (child.pid === undefined ? Promise.resolve() : stopChild(child)),
    };
  };
  return { exec, spawn: start };
}
