import { readdir, readlink } from 'node:fs/promises';
import { childrenOf, readProc, signal } from '../proc.js';
import { type AcceptedLogin, type CutReason, type EdgeSession, type KeyStatus, connectionInode, parseAcceptedLogin, parseProcNetTcp, sessionsToCut } from './sessions.js';

// The edge's own check on its sshd's sessions. sshd checks a key only at login, so a session
// opened with a key that is later revoked or expires would keep its port for as long as the node
// likes. The warden reads which key each session logged in with (sshd's VERBOSE log), finds the
// session's own process (a child of the listening sshd holding that connection's socket), and
// ends it when its key is no longer valid or it is older than the edge's limit.

export interface SessionWardenOptions {
  /** The listening sshd this code started: only its children are ever signalled. */
  sshdPid: number;
  /** The port sshd listens on: the per-connection process holds a socket with this local port. */
  sshdPort: number;
  keyStatus: (fingerprint: string, now: Date) => KeyStatus | Promise<KeyStatus>;
  /** The edge's session age limit, whatever the node's own. */
  maxSessionMs?: number;
  /** How often `enforce()` runs by itself; 0 for never (only on demand). */
  intervalMs?: number;
  /** A cut session's process still there after this gets SIGKILL, with its user child. */
  killGraceMs?: number;
  onCut?: (cut: SessionCutEvent) => void;
  now?: () => Date;
}

export const SESSION_WARDEN_DEFAULTS = {
  // Longer than the node's own lifetime (REVERSE_TUNNEL_DEFAULTS.maxSessionMs, 24 h), so a node
  // that renews on time is never cut by the edge.
  maxSessionMs: 25 * 3600_000,
  intervalMs: 5000,
  killGraceMs: 3000,
} as const;

export interface SessionCutEvent {
  fingerprint: string;
  pid: number;
  reason: CutReason;
  address: string;
  port: number;
  since: Date;
  at: Date;
}

/** A login read from the log, waiting for its process to be found. */
interface Pending {
  login: AcceptedLogin;
  at: Date;
}

/** An unfound login is dropped after this: its connection ended before it could be found. */
const PENDING_KEEP_MS = 60_000;

export class SessionWarden {
  private readonly pending: Pending[] = [];
  /** By pid, with the process's start time to tell a reused pid apart. */
  private readonly live = new Map<number, EdgeSession & { startTime: number }>();
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private readonly now: () => Date;
  private readonly maxSessionMs: number;
  private readonly killGraceMs: number;

  constructor(private readonly opts: SessionWardenOptions) {
    this.now = opts.now ?? (() => new Date());
    this.maxSessionMs = opts.maxSessionMs ?? SESSION_WARDEN_DEFAULTS.maxSessionMs;
    this.killGraceMs = opts.killGraceMs ?? SESSION_WARDEN_DEFAULTS.killGraceMs;
  }

  start(): this {
    const interval = this.opts.intervalMs ?? SESSION_WARDEN_DEFAULTS.intervalMs;
    if (interval > 0 && !this.timer) {
      this.timer = setInterval(() => {
        // A failed pass is tried again on the next tick; nothing to report it to but the next one.
        this.enforce().catch(() => undefined);
      }, interval);
      this.timer.unref();
    }
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One line of sshd's log. A login is tied to its process at once, while that process is surely alive. */
  line(text: string): void {
    const login = parseAcceptedLogin(text);
    if (!login) return;
    this.pending.push({ login, at: this.now() });
    this.serialized(() => this.attribute()).catch(() => undefined);
  }

  /** The authenticated sessions known right now. */
  async sessions(): Promise<EdgeSession[]> {
    return this.serialized(async () => {
      await this.attribute();
      await this.prune();
      return [...this.live.values()].map(({ startTime: _, ...s }) => ({ ...s }));
    });
  }

  /** Ends what must end now; call right after a revocation or rotation as well as on the timer. */
  enforce(): Promise<SessionCutEvent[]> {
    return this.serialized(() => this.pass());
  }

  private serialized<T>(f: () => Promise<T>): Promise<T> {
    const next = this.chain.then(f, f);
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async pass(): Promise<SessionCutEvent[]> {
    await this.attribute();
    const children = await this.prune();
    const now = this.now();
    const statuses = new Map<string, KeyStatus>();
    for (const s of this.live.values()) {
      // A source that throws fails this pass, cutting nothing: the next pass asks again.
      if (!statuses.has(s.fingerprint)) statuses.set(s.fingerprint, await this.opts.keyStatus(s.fingerprint, now));
    }
    const cuts = sessionsToCut([...this.live.values()], (fp) => statuses.get(fp)!, now, this.maxSessionMs);
    const events: SessionCutEvent[] = [];
    for (const { session, reason } of cuts) {
      const s = this.live.get(session.pid)!;
      this.live.delete(s.pid);
      if (children.get(s.pid) !== s.startTime) continue;
      // The monitor passes SIGTERM on to its user child, whose exit closes the connection and the
      // forwarded port with it.
      if (!signal(s.pid, 'SIGTERM')) continue;
      this.hardKillLater(s.pid, s.startTime);
      const event: SessionCutEvent = { fingerprint: s.fingerprint, pid: s.pid, reason, address: s.address, port: s.port, since: s.since, at: now };
      events.push(event);
      this.opts.onCut?.(event);
    }
    return events;
  }

  /** Ties each pending login to the sshd child holding its connection. */
  private async attribute(): Promise<void> {
    const cutoff = this.now().getTime() - PENDING_KEEP_MS;
    while (this.pending.length > 0 && this.pending[0]!.at.getTime() < cutoff) this.pending.shift();
    if (this.pending.length === 0) return;
    const sockets = [...parseProcNetTcp(await readProc(`/proc/${this.opts.sshdPid}/net/tcp`)), ...parseProcNetTcp(await readProc(`/proc/${this.opts.sshdPid}/net/tcp6`))];
    const children = await childrenOf(this.opts.sshdPid);
    for (let i = 0; i < this.pending.length; ) {
      const { login, at } = this.pending[i]!;
      const inode = connectionInode(sockets, this.opts.sshdPort, login);
      let owner: { pid: number; startTime: number } | undefined;
      if (inode !== undefined) {
        for (const [pid, startTime] of children) {
          if (this.live.has(pid)) continue;
          if ((await socketInodes(pid)).has(inode)) {
            owner = { pid, startTime };
            break;
          }
        }
      }
      if (!owner) {
        i++;
        continue;
      }
      this.pending.splice(i, 1);
      this.live.set(owner.pid, {
        pid: owner.pid,
        startTime: owner.startTime,
        fingerprint: login.fingerprint,
        user: login.user,
        address: login.address,
        port: login.port,
        since: at,
      });
    }
  }

  /** Forgets sessions whose process has ended; returns sshd's children with their start times. */
  private async prune(): Promise<Map<number, number>> {
    const children = await childrenOf(this.opts.sshdPid);
    for (const [pid, s] of this.live) if (children.get(pid) !== s.startTime) this.live.delete(pid);
    return children;
  }

  private hardKillLater(pid: number, startTime: number): void {
    const t = setTimeout(async () => {
      const children = await childrenOf(this.opts.sshdPid);
      if (children.get(pid) !== startTime) return;
      // Its user child first: once the monitor is gone it would belong to init and keep the port.
      for (const grandchild of (await childrenOf(pid)).keys()) signal(grandchild, 'SIGKILL');
      signal(pid, 'SIGKILL');
    }, this.killGraceMs);
    t.unref();
  }
}

async function socketInodes(pid: number): Promise<Set<number>> {
  const inodes = new Set<number>();
  const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
  for (const fd of fds) {
    const m = /^socket:\[(\d+)\]$/.exec(await readlink(`/proc/${pid}/fd/${fd}`).catch(() => ''));
    if (m) inodes.add(Number(m[1]));
  }
  return inodes;
}
