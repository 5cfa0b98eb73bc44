import { setTimeout as sleep } from 'node:timers/promises';
import { type BackoffPolicy, DEFAULT_BACKOFF, backoffDelay } from './backoff.js';
import { type CommandHost, type SpawnedCommand, exited, localHost } from '../host.js';
import { type SshClientInput, classifySshLine, sshClientArgs } from './ssh-client.js';

// One SSH path session kept alive from the node's host: `ssh -N -R` to the edge's sshd, started
// again with backoff whenever it ends, until stopped or retired.

export type ReverseTunnelStatus = 'connecting' | 'up' | 'down' | 'stopped';

export interface ReverseTunnelState {
  status: ReverseTunnelStatus;
  /** Why the last session ended (ssh's own words where it gave any). */
  reason?: string;
  /** Sessions that failed in a row before reaching up. */
  failures: number;
  /** The current ssh process, while there is one. */
  pid?: number;
  since: Date;
}

export interface ReverseTunnelOptions extends Omit<SshClientInput, 'serverAliveIntervalSec' | 'serverAliveCountMax' | 'connectTimeoutSec'> {
  /** Where ssh runs (the node's host); this machine unless given. */
  host?: CommandHost;
  serverAliveIntervalSec?: number;
  serverAliveCountMax?: number;
  connectTimeoutSec?: number;
  backoff?: BackoffPolicy;
  /** A session not up within this is ended and counted as failed. */
  upTimeoutMs?: number;
  /** A session up this long is ended and started again (no backoff): the session lifetime limit. */
  maxSessionMs?: number;
  onState?: (state: ReverseTunnelState) => void;
  /** For tests of the policy: [0, 1). */
  random?: () => number;
}

export const REVERSE_TUNNEL_DEFAULTS = {
  serverAliveIntervalSec: 10,
  serverAliveCountMax: 3,
  connectTimeoutSec: 10,
  upTimeoutMs: 20_000,
  maxSessionMs: 24 * 3600_000,
} as const;

interface SessionEnd {
  wasUp: boolean;
  reason: string;
  /** Ended by the lifetime limit: start again at once. */
  renew: boolean;
}

/** Lines of reason kept per session; ssh says what went wrong in its last few. */
const REASON_LINES = 3;

export class ReverseTunnel {
  private current: ReverseTunnelState = { status: 'down', failures: 0, since: new Date() };
  private readonly listeners = new Set<(s: ReverseTunnelState) => void>();
  private readonly abort = new AbortController();
  private session: SpawnedCommand | undefined;
  private ending: string | undefined;
  private retiring = false;
  private loop: Promise<void> | undefined;
  private readonly args: string[];
  private readonly host: CommandHost;

  constructor(private readonly opts: ReverseTunnelOptions) {
    this.host = opts.host ?? localHost;
    this.args = sshClientArgs({
      ...opts,
      serverAliveIntervalSec: opts.serverAliveIntervalSec ?? REVERSE_TUNNEL_DEFAULTS.serverAliveIntervalSec,
      serverAliveCountMax: opts.serverAliveCountMax ?? REVERSE_TUNNEL_DEFAULTS.serverAliveCountMax,
      connectTimeoutSec: opts.connectTimeoutSec ?? REVERSE_TUNNEL_DEFAULTS.connectTimeoutSec,
    });
    if (opts.onState) this.listeners.add(opts.onState);
  }

  get state(): ReverseTunnelState {
    return { ...this.current };
  }

  get remotePort(): number {
    return this.opts.forward.remotePort;
  }

  /** Starts the first session; later ones follow by themselves. */
  start(): this {
    this.loop ??= this.run();
    return this;
  }

  /** Calls `listener` on every change of state; returns its removal. */
  subscribe(listener: (s: ReverseTunnelState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves with the state once `status` is reached; rejects after `timeoutMs` with the last state. */
  waitFor(status: ReverseTunnelStatus, timeoutMs: number): Promise<ReverseTunnelState> {
    if (this.current.status === status) return Promise.resolve(this.state);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`ssh tunnel to port ${this.remotePort}: not ${status} within ${timeoutMs} ms; last ${JSON.stringify(this.current)}`));
      }, timeoutMs);
      const off = this.subscribe((s) => {
        if (s.status !== status) return;
        clearTimeout(timer);
        off();
        resolve({ ...s });
      });
    });
  }

  /** Ends the session and starts no other. */
  async stop(): Promise<void> {
    this.retiring = true;
    this.abort.abort();
    this.endSession('stopped');
    await this.loop;
    if (this.current.status !== 'stopped') this.set({ status: 'stopped', failures: this.current.failures });
  }

  /**
   * The old session of a rotation: it starts no further session, and ends when `drained`
   * resolves (its open connections ended) or at `deadline` (the overlap's end), whichever is first.
   * If it ends by itself meanwhile, it stays down.
   */
  async retire(drained: Promise<unknown>, deadline: Date): Promise<void> {
    this.retiring = true;
    const overlap = new AbortController();
    try {
      // A `drained` that rejects ends the overlap too: the old session must not outlive it.
      await Promise.race([
        drained,
        sleep(Math.max(0, deadline.getTime() - Date.now()), undefined, { signal: overlap.signal }).catch(() => undefined),
        ...(this.loop ? [this.loop] : []),
      ]);
    } finally {
      overlap.abort();
      await this.stop();
    }
  }

  private set(next: Omit<ReverseTunnelState, 'since'>): void {
    this.current = { ...next, since: new Date() };
    for (const l of [...this.listeners]) l(this.state);
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.abort.signal.aborted) {
      this.set({ status: 'connecting', failures });
      const end = await this.runSession();
      failures = end.wasUp ? 0 : failures + 1;
      if (this.abort.signal.aborted) break;
      this.set({ status: 'down', reason: end.reason, failures });
      if (this.retiring) return;
      if (end.renew) continue;
      const wait = backoffDelay(end.wasUp ? 0 : failures - 1, this.opts.backoff ?? DEFAULT_BACKOFF, this.opts.random);
      await sleep(wait, undefined, { signal: this.abort.signal }).catch(() => undefined);
    }
    this.set({ status: 'stopped', reason: this.current.reason, failures });
  }

  private runSession(): Promise<SessionEnd> {
    this.ending = undefined;
    let session: SpawnedCommand;
    try {
      session = this.host.spawn('ssh', this.args);
    } catch (err) {
      return Promise.resolve({ wasUp: false, reason: `cannot start ssh: ${(err as Error).message}`, renew: false });
    }
    this.session = session;
    const { child } = session;
    const reasons: string[] = [];
    let wasUp = false;
    let renew = false;
    let lifetime: NodeJS.Timeout | undefined;
    const upTimer = setTimeout(
      () => this.endSession(`not up within ${this.opts.upTimeoutMs ?? REVERSE_TUNNEL_DEFAULTS.upTimeoutMs} ms`),
      this.opts.upTimeoutMs ?? REVERSE_TUNNEL_DEFAULTS.upTimeoutMs,
    );
    let partial = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      partial += chunk.toString();
      let nl: number;
      while ((nl = partial.indexOf('\n')) >= 0) {
        const line = classifySshLine(partial.slice(0, nl));
        partial = partial.slice(nl + 1);
        if (line.kind === 'reason') {
          reasons.push(line.text);
          if (reasons.length > REASON_LINES) reasons.shift();
        } else if (line.kind === 'forward-up' && line.remotePort === this.remotePort && !wasUp) {
          wasUp = true;
          // What ssh said on the way up is not why the session will end.
          reasons.length = 0;
          clearTimeout(upTimer);
          lifetime = setTimeout(() => {
            renew = true;
            this.endSession('session lifetime reached');
          }, this.opts.maxSessionMs ?? REVERSE_TUNNEL_DEFAULTS.maxSessionMs);
          this.set({ status: 'up', failures: 0, pid: session.pid });
        }
      }
      // A line longer than this is not one ssh writes; keep memory bounded.
      if (partial.length > 64 * 1024) partial = '';
    });
    child.stdout!.resume();
    return new Promise((resolve) => {
      let ended = false;
      const done = (code: number | null, signal: string | null, err?: Error) => {
        if (ended) return;
        ended = true;
        clearTimeout(upTimer);
        clearTimeout(lifetime);
        this.session = undefined;
        const said = reasons.length > 0 ? reasons.join(' / ') : undefined;
        const how = err ? `ssh failed: ${err.message}` : `ssh exited (${signal ?? `code ${code}`})`;
        resolve({ wasUp, renew, reason: this.ending ?? said ?? how });
      };
      child.once('error', (err) => done(null, null, err));
      // 'close' waits for stderr's last words; a grandchild holding the pipe must not hold the session.
      child.once('exit', (code, signal) => {
        const late = setTimeout(() => done(code, signal), 500);
        child.once('close', () => {
          clearTimeout(late);
          done(code, signal);
        });
      });
    });
  }

  private endSession(reason: string): void {
    const s = this.session;
    if (!s || exited(s.child)) return;
    this.ending ??= reason;
    s.child.kill('SIGTERM');
    // ssh ends on SIGTERM at once; the fallback only covers a process stuck in a write.
    const hard = setTimeout(() => {
      if (!exited(s.child)) s.child.kill('SIGKILL');
    }, 3000);
    hard.unref();
    s.child.once('exit', () => clearTimeout(hard));
  }
}
