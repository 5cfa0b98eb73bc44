import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { ServiceName } from '@switchyard/contracts';

export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

export interface ServiceProcess {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Everything the process wrote so far, stdout and stderr interleaved. */
  output(): string;
  /** Resolves with the first log line that matches. */
  waitForLog(match: RegExp, timeoutMs?: number): Promise<string>;
  /** Sends a signal to this process (by its pid) and waits for it to exit. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts a built service (`services/<name>/dist/main.js`) as a child process of the test.
 * `nodeArgs`: options for node itself (`--cpu-prof`, which NODE_OPTIONS refuses); a load
 * balancer's workers inherit them. `netns`: run it inside that network namespace of the test's
 * (`ip netns exec` execs node, so the pid is still the service's).
 */
export function startService(name: ServiceName, env: Record<string, string>, nodeArgs: readonly string[] = [], netns?: string): ServiceProcess {
  const command = [process.execPath, ...nodeArgs, `services/${name}/dist/main.js`];
  const [file, ...args] = netns ? ['ip', 'netns', 'exec', netns, ...command] : command;
  const child = spawn(file!, args, {
    cwd: repoRoot,
    env: { PATH: process.env['PATH'] ?? '', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const waiters: Array<{ match: RegExp; resolve: (line: string) => void }> = [];
  const onData = (chunk: Buffer) => {
    out += chunk.toString();
    if (out.length > 2_000_000) out = out.slice(-1_000_000);
    for (const w of [...waiters]) {
      const line = out.split('\n').find((l) => w.match.test(l));
      if (line) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));

  return {
    name,
    pid: child.pid!,
    child,
    exited,
    output: () => out,
    waitForLog(match, timeoutMs = 30_000) {
      const found = out.split('\n').find((l) => match.test(l));
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${name}: no log line matching ${match} within ${timeoutMs} ms; output:\n${out.slice(-4000)}`)), timeoutMs);
        exited.then(({ code, signal }) => {
          clearTimeout(timer);
          reject(new Error(`${name} exited (code ${code}, signal ${signal}) before logging ${match}; output:\n${out.slice(-4000)}`));
        });
        waiters.push({
          match,
          resolve: (line) => {
            clearTimeout(timer);
            resolve(line);
          },
        });
      });
    },
    async stop(signal = 'SIGTERM', timeoutMs = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      process.kill(child.pid!, signal);
      const timer = setTimeout(() => child.exitCode === null && child.signalCode === null && process.kill(child.pid!, 'SIGKILL'), timeoutMs);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
  };
}

/** Starts a service and waits for its "ready" log line. */
export async function startReady(name: ServiceName, env: Record<string, string>, timeoutMs = 30_000, nodeArgs: readonly string[] = []): Promise<ServiceProcess> {
  const p = startService(name, env, nodeArgs);
  await p.waitForLog(/"msg":"ready"/, timeoutMs);
  return p;
}
