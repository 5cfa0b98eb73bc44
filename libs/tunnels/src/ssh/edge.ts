import { once } from 'node:events';
import { access, chmod, copyFile, lstat, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type CommandHost, type SpawnedCommand, exited, localHost } from '../host.js';
import { type AuthorizedKeysSource, type KeySourceServer, serveAuthorizedKeys } from './key-source.js';
import { SESSION_WARDEN_DEFAULTS, type SessionCutEvent, SessionWarden } from './session-warden.js';
import type { EdgeSession, KeyStatusSource } from './sessions.js';
import { childrenOf, signal } from '../proc.js';
import { knownHostsLine } from './ssh-client.js';
import { SSHD_DEFAULTS, pathChain, renderSshdConfig, unsafeCommandPath } from './sshd-config.js';

// The edge's sshd, run by tunnel-manager with a config of its own: Debian's stock /usr/sbin/sshd,
// its host key, its AuthorizedKeysCommand and the key source that command asks.

export const SSHD_PATH = '/usr/sbin/sshd';
/** The command as shipped in this package; sshd runs a copy installed under the edge's directory. */
const COMMAND_SOURCE = new URL('../../bin/authorized-keys.mjs', import.meta.url);

export interface SshEdgeOptions {
  /**
   * The edge's own directory: host key, config, pid file, the key source's socket and the
   * installed command. It and every directory above it must be root-owned and not writable by
   * group or others (sshd's rule for the command), so not under /tmp: e.g.
   * /var/lib/switchyard/ssh-edge, or a directory under /run.
   */
  dir: string;
  listenAddress: string;
  port: number;
  tunnelUser: string;
  commandUser: string;
  /**
   * Answers sshd at each login (`authorizedKeys`) and the edge about each live session's key
   * (`keyStatus`); `SshKeyStore` does both.
   */
  keys: AuthorizedKeysSource & KeyStatusSource;
  /**
   * The edge's own end to sessions: one whose key is no longer valid, or older than
   * `maxSessionMs`, is ended every `intervalMs` and at each `enforce()`.
   */
  sessions?: { maxSessionMs?: number; intervalMs?: number; onCut?: (cut: SessionCutEvent) => void };
  /** Where sshd runs (its network namespace); this machine unless given. */
  host?: CommandHost;
  clientAliveIntervalSec?: number;
  clientAliveCountMax?: number;
  maxStartups?: number;
  loginGraceTimeSec?: number;
  readyTimeoutMs?: number;
}

export interface SshEdge {
  readonly dir: string;
  readonly listenAddress: string;
  readonly port: number;
  /** `ssh-ed25519 AAAA…`: what nodes pin. */
  readonly hostPublicKey: string;
  readonly pid: number;
  readonly keySource: KeySourceServer;
  /** The known_hosts line nodes write for this edge. */
  knownHostsLine(): string;
  /** sshd's own log (stderr with -e), the latest part. */
  log(): string;
  /** Connections accepted on a tunnel's loopback port right now (ss): how a rotation knows the old session drained. */
  openConnections(remotePort: number): Promise<number>;
  /** The authenticated sessions, each with the key fingerprint it logged in with. */
  sessions(): Promise<EdgeSession[]>;
  /** Ends the sessions whose key is no longer valid or that are too old, now: call after a revocation or rotation. */
  enforce(): Promise<SessionCutEvent[]>;
  /** Ends sshd and its sessions, closes the key source; the directory (and host key) stay. */
  stop(): Promise<void>;
}

export async function startSshEdge(opts: SshEdgeOptions): Promise<SshEdge> {
  const host = opts.host ?? localHost;
  const dir = opts.dir;
  const paths = {
    hostKey: join(dir, 'host_key'),
    config: join(dir, 'sshd_config'),
    pid: join(dir, 'sshd.pid'),
    socket: join(dir, 'keys.sock'),
    command: join(dir, 'bin', 'authorized-keys'),
    script: join(dir, 'bin', 'authorized-keys.mjs'),
  };
  await mkdir(join(dir, 'bin'), { recursive: true, mode: 0o755 });
  await chmod(dir, 0o755);
  await chmod(join(dir, 'bin'), 0o755);
  const hostPublicKey = await ensureHostKey(host, paths.hostKey);
  await installCommand(paths.command, paths.script);
  const unsafe = unsafeCommandPath(await Promise.all(pathChain(paths.command).map(async (p) => ({ path: p, ...(await lstat(p)) }))));
  if (unsafe) throw new Error(`sshd would refuse its AuthorizedKeysCommand ${paths.command}: ${unsafe}`);

  const owner = { uid: Number(await localHost.exec('id', ['-u', opts.commandUser])), gid: Number(await localHost.exec('id', ['-g', opts.commandUser])) };
  const keySource = await serveAuthorizedKeys({ socketPath: paths.socket, source: opts.keys, owner });
  let sshd: SpawnedCommand | undefined;
  try {
    const config = renderSshdConfig({
      listenAddress: opts.listenAddress,
      port: opts.port,
      hostKeyPath: paths.hostKey,
      pidFile: paths.pid,
      authorizedKeysCommand: paths.command,
      authorizedKeysCommandArgs: [paths.socket],
      commandUser: opts.commandUser,
      tunnelUser: opts.tunnelUser,
      clientAliveIntervalSec: opts.clientAliveIntervalSec ?? SSHD_DEFAULTS.clientAliveIntervalSec,
      clientAliveCountMax: opts.clientAliveCountMax ?? SSHD_DEFAULTS.clientAliveCountMax,
      maxStartups: opts.maxStartups ?? SSHD_DEFAULTS.maxStartups,
      loginGraceTimeSec: opts.loginGraceTimeSec ?? SSHD_DEFAULTS.loginGraceTimeSec,
    });
    await writeFile(paths.config, config, { mode: 0o600 });
    await host.exec(SSHD_PATH, ['-t', '-f', paths.config]);
    // An absolute path: sshd re-executes itself per connection and refuses to start otherwise.
    sshd = host.spawn(SSHD_PATH, ['-D', '-e', '-f', paths.config]);
    const log = keepTail(sshd);
    const warden = new SessionWarden({
      sshdPid: sshd.pid,
      sshdPort: opts.port,
      keyStatus: (fingerprint, now) => opts.keys.keyStatus(fingerprint, now),
      maxSessionMs: opts.sessions?.maxSessionMs ?? SESSION_WARDEN_DEFAULTS.maxSessionMs,
      intervalMs: opts.sessions?.intervalMs ?? SESSION_WARDEN_DEFAULTS.intervalMs,
      onCut: opts.sessions?.onCut,
    });
    eachLine(sshd, (line) => warden.line(line));
    await listening(sshd, log, opts.readyTimeoutMs ?? 10_000);
    warden.start();
    const started = sshd;
    return {
      dir,
      listenAddress: opts.listenAddress,
      port: opts.port,
      hostPublicKey,
      pid: started.pid,
      keySource,
      knownHostsLine: () => knownHostsLine(opts.listenAddress, opts.port, hostPublicKey),
      log: log.text,
      async openConnections(remotePort) {
        const out = await host.exec('ss', ['-Htn', 'state', 'established', 'sport', '=', `:${remotePort}`]);
        return out.split('\n').filter((l) => l.trim() !== '').length;
      },
      sessions: () => warden.sessions(),
      enforce: () => warden.enforce(),
      async stop() {
        warden.stop();
        await stopSshd(started);
        await keySource.close();
      },
    };
  } catch (err) {
    if (sshd) await stopSshd(sshd);
    await keySource.close();
    throw err;
  }
}

/** Kept across restarts: nodes pinned it, and a new one would lock every node out. */
async function ensureHostKey(host: CommandHost, path: string): Promise<string> {
  const exists = await access(path).then(
    () => true,
    () => false,
  );
  if (!exists) await host.exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'switchyard-edge', '-f', path]);
  const [type, key] = (await readFile(`${path}.pub`, 'utf8')).trim().split(/\s+/);
  return `${type} ${key}`;
}

/**
 * The script, and a shell wrapper naming node by its absolute path: sshd runs the command with
 * PATH reduced to the system's and as the command user, and an extensionless script would not be
 * read as an ES module. Each written beside and renamed into place, so sshd never runs half a file.
 */
async function installCommand(command: string, script: string): Promise<void> {
  await copyFile(COMMAND_SOURCE, `${script}.new`);
  await chmod(`${script}.new`, 0o644);
  await rename(`${script}.new`, script);
  await writeFile(`${command}.new`, `#!/bin/sh\nexec '${process.execPath}' '${script}' "$@"\n`, { mode: 0o755 });
  await chmod(`${command}.new`, 0o755);
  await rename(`${command}.new`, command);
}

function keepTail(p: SpawnedCommand): { text: () => string } {
  let text = '';
  const keep = (chunk: Buffer) => {
    text += chunk.toString();
    if (text.length > 100_000) text = text.slice(-50_000);
  };
  p.child.stderr!.on('data', keep);
  p.child.stdout!.on('data', keep);
  return { text: () => text };
}

/** sshd's log line by line (stderr with -e), for the session warden. */
function eachLine(p: SpawnedCommand, onLine: (line: string) => void): void {
  let partial = '';
  p.child.stderr!.on('data', (chunk: Buffer) => {
    partial += chunk.toString();
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      onLine(partial.slice(0, nl).replace(/\r$/, ''));
      partial = partial.slice(nl + 1);
    }
    // No line of sshd's is this long; keep memory bounded.
    if (partial.length > 64 * 1024) partial = '';
  });
}

/** sshd -e says "Server listening on …" once its socket is bound. */
function listening(p: SpawnedCommand, log: { text: () => string }, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (/Server listening on /.test(log.text())) finish();
    };
    const onExit = () => finish(new Error(`sshd exited before listening: ${log.text().trim()}`));
    const timer = setTimeout(() => finish(new Error(`sshd not listening within ${timeoutMs} ms: ${log.text().trim()}`)), timeoutMs);
    const finish = (err?: Error) => {
      clearTimeout(timer);
      p.child.stderr!.off('data', check);
      p.child.off('exit', onExit);
      if (err) reject(err);
      else resolve();
    };
    // Registered after keepTail's listener, so the text already holds the chunk.
    p.child.stderr!.on('data', check);
    p.child.once('exit', onExit);
    if (exited(p.child)) onExit();
    check();
  });
}

/**
 * The listener, then the per-connection processes it forked (read before it goes: once it is
 * gone they belong to init). Ending the listener alone would leave every tunnel session running.
 */
async function stopSshd(p: SpawnedCommand): Promise<void> {
  if (exited(p.child)) return;
  const children = await childrenOf(p.pid);
  const gone = once(p.child, 'exit');
  p.child.kill('SIGTERM');
  // Already ended with its connection, some of them.
  for (const pid of children.keys()) signal(pid, 'SIGTERM');
  const hard = setTimeout(() => p.child.kill('SIGKILL'), 3000);
  await gone;
  clearTimeout(hard);
}
