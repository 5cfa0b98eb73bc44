import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

// rclone is the engine: `rclone rcd` runs as a supervised child on loopback and is driven over
// its remote-control API. Its credentials and its config file's path go in through the
// environment (RCLONE_RC_USER, RCLONE_RC_PASS, RCLONE_CONFIG), never the command line, which
// `ps` shows to every user of the host.

export interface RcdOptions {
  /** A directory of this process's own: rclone's config file (0600) lives here. */
  stateDir: string;
  /** How long rclone may take to start serving; 10 s unless given. */
  startTimeoutMs?: number;
  /** rclone's own flags (e.g. `--bwlimit`), none of them secret. */
  flags?: readonly string[];
}

export interface Rcd {
  /** http://127.0.0.1:<port> */
  readonly url: string;
  readonly pid: number;
  /** The config file remotes made with `config/create` are kept in (0600). */
  readonly configPath: string;
  /** Calls an rc method (`sync/sync`, `job/status`, …); a refusal throws RcError with rclone's own message. */
  call<T = Record<string, unknown>>(method: string, params?: object): Promise<T>;
  /** What rclone wrote to its log so far (its last 200 kB). */
  output(): string;
  exited(): boolean;
  /** SIGTERM, then SIGKILL after 5 s; resolves once it has exited. */
  stop(): Promise<void>;
}

export class RcError extends Error {
  constructor(
    readonly method: string,
    readonly status: number,
    message: string,
  ) {
    super(`rclone ${method}: ${message} (HTTP ${status})`);
  }
}

const SERVING = /Serving remote control on (http:\/\/127\.0\.0\.1:\d+)\//;

export async function startRcd(o: RcdOptions): Promise<Rcd> {
  await mkdir(o.stateDir, { recursive: true, mode: 0o700 });
  await chmod(o.stateDir, 0o700);
  const configPath = join(o.stateDir, 'rclone.conf');
  await writeFile(configPath, '', { mode: 0o600, flag: 'a' });
  await chmod(configPath, 0o600);
  const user = 'switchyard';
  const pass = randomBytes(24).toString('hex');
  const child: ChildProcess = spawn('rclone', ['rcd', '--rc-addr', '127.0.0.1:0', '-v', ...(o.flags ?? [])], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: o.stateDir, RCLONE_RC_USER: user, RCLONE_RC_PASS: pass, RCLONE_CONFIG: configPath },
  });
  let out = '';
  const keep = (chunk: Buffer) => {
    out += chunk.toString();
    if (out.length > 200_000) out = out.slice(-100_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exit = once(child, 'exit');
  const timeoutMs = o.startTimeoutMs ?? 10_000;
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`rclone rcd did not serve within ${timeoutMs} ms: ${out.trim().slice(-1000) || '(no output)'}`)), timeoutMs);
    const look = () => {
      const m = SERVING.exec(out);
      if (!m) return;
      clearTimeout(timer);
      resolve(m[1]!);
    };
    child.stderr!.on('data', look);
    child.stdout!.on('data', look);
    void exit.then(() => {
      clearTimeout(timer);
      reject(new Error(`rclone rcd exited before serving: ${out.trim().slice(-1000) || '(no output)'}`));
    });
  }).catch(async (err: Error) => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    throw err;
  });
  const auth = `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  return {
    url,
    pid: child.pid!,
    configPath,
    output: () => out,
    exited,
    async call<T>(method: string, params: object = {}): Promise<T> {
      const res = await fetch(`${url}/${method}`, { method: 'POST', headers: { authorization: auth, 'content-type': 'application/json' }, body: JSON.stringify(params) });
      const text = await res.text();
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        body = { error: text.trim() };
      }
      if (!res.ok) throw new RcError(method, res.status, String((body as { error?: unknown }).error ?? text.trim()));
      return body as T;
    },
    async stop() {
      if (exited()) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => !exited() && child.kill('SIGKILL'), 5_000);
      await exit;
      clearTimeout(timer);
    },
  };
}
