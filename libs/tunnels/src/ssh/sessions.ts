import { createHash } from 'node:crypto';
import { endianness } from 'node:os';
import { type SshKeyRecord, isValidAt, parsePublicKey } from './key-records.js';

// What the edge knows about its live sshd sessions and which of them to end, as pure functions
// over sshd's log lines, /proc's text and key records: the SessionWarden only reads and signals.

/** `SHA256:<base64, no padding>` of the key blob: what sshd logs and `ssh-keygen -lf` prints. */
export function sshFingerprint(publicKey: string): string {
  const { key } = parsePublicKey(publicKey);
  return `SHA256:${createHash('sha256').update(Buffer.from(key, 'base64')).digest('base64').replace(/=+$/, '')}`;
}

/** sshd's VERBOSE line for a login: which key opened the connection from `address:port`. */
export interface AcceptedLogin {
  user: string;
  address: string;
  port: number;
  keyType: string;
  fingerprint: string;
}

// "Accepted publickey for switchyard-tunnel from 10.77.0.2 port 52278 ssh2: ED25519 SHA256:DMAy…"
// With -e sshd writes no pid or prefix; the connection's address and port name the process.
const ACCEPTED = /^Accepted publickey for (\S+) from (\S+) port (\d+) ssh2: (\S+) (SHA256:[A-Za-z0-9+/]+)\s*$/;

export function parseAcceptedLogin(line: string): AcceptedLogin | undefined {
  const m = ACCEPTED.exec(line);
  if (!m) return undefined;
  return { user: m[1]!, address: canonicalAddress(m[2]!), port: Number(m[3]), keyType: m[4]!, fingerprint: m[5]! };
}

export interface TcpSocket {
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
  /** The kernel's TCP state number: 1 is ESTABLISHED, 10 LISTEN. */
  state: number;
  inode: number;
}

export const TCP_ESTABLISHED = 1;

/**
 * `/proc/<pid>/net/tcp` or `tcp6` (the table of that process's network namespace). Addresses are
 * the kernel's words printed in host byte order, hence `byteOrder`.
 */
export function parseProcNetTcp(text: string, byteOrder: 'LE' | 'BE' = endianness()): TcpSocket[] {
  const sockets: TcpSocket[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const [local, remote, state, inode] = [f[1]!, f[2]!, f[3]!, f[9]!];
    const l = endpoint(local, byteOrder);
    const r = endpoint(remote, byteOrder);
    if (!l || !r) continue;
    sockets.push({ localAddress: l.address, localPort: l.port, remoteAddress: r.address, remotePort: r.port, state: Number.parseInt(state, 16), inode: Number(inode) });
  }
  return sockets;
}

function endpoint(text: string, byteOrder: 'LE' | 'BE'): { address: string; port: number } | undefined {
  const [hex, port] = text.split(':');
  if (!hex || !port || !/^[0-9A-Fa-f]+$/.test(hex) || (hex.length !== 8 && hex.length !== 32)) return undefined;
  const bytes: number[] = [];
  for (let w = 0; w < hex.length; w += 8) {
    const word = [0, 2, 4, 6].map((i) => Number.parseInt(hex.slice(w + i, w + i + 2), 16));
    bytes.push(...(byteOrder === 'LE' ? word.reverse() : word));
  }
  const address = bytes.length === 4 ? bytes.join('.') : ipv6(bytes);
  return { address: canonicalAddress(address), port: Number.parseInt(port, 16) };
}

function ipv6(bytes: number[]): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return groups.join(':');
}

/**
 * One spelling per address, so sshd's log and /proc compare equal: IPv4 dotted, IPv4-mapped IPv6
 * as IPv4 (how sshd logs a v4 client of a v6 socket), other IPv6 as eight unpadded lowercase groups.
 */
export function canonicalAddress(address: string): string {
  if (!address.includes(':')) return address;
  let a = address.toLowerCase();
  const v4 = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (v4) {
    const o = v4[2]!.split('.').map(Number);
    a = `${v4[1]}${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`;
  }
  const [head = '', tail] = a.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const norm = groups.map((g) => Number.parseInt(g || '0', 16).toString(16));
  if (norm.slice(0, 5).every((g) => g === '0') && norm[5] === 'ffff') {
    const [hi, lo] = [Number.parseInt(norm[6]!, 16), Number.parseInt(norm[7]!, 16)];
    return [hi >> 8, hi & 0xff, lo >> 8, lo & 0xff].join('.');
  }
  return norm.join(':');
}

/** The inode of the established connection from `remote` to the sshd's port, if the table has one. */
export function connectionInode(sockets: readonly TcpSocket[], sshdPort: number, remote: { address: string; port: number }): number | undefined {
  const address = canonicalAddress(remote.address);
  return sockets.find((s) => s.state === TCP_ESTABLISHED && s.localPort === sshdPort && s.remoteAddress === address && s.remotePort === remote.port)?.inode;
}

/** Field 22 of `/proc/<pid>/stat`: when the process started, in clock ticks since boot. Tells a reused pid apart. */
export function parseStatStartTime(stat: string): number | undefined {
  // The command name (field 2) may hold spaces and parentheses: count from its closing one.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const v = Number(rest[19]);
  return Number.isInteger(v) ? v : undefined;
}

export type KeyStatus = 'valid' | 'revoked' | 'expired' | 'not yet valid' | 'unknown key';

/** What the records say of the key with this fingerprint at `now`. */
export function keyStatusAt(records: Iterable<SshKeyRecord>, fingerprint: string, now: Date): KeyStatus {
  const mine = [...records].filter((r) => sshFingerprint(r.publicKey) === fingerprint);
  if (mine.length === 0) return 'unknown key';
  if (mine.some((r) => isValidAt(r, now))) return 'valid';
  if (mine.some((r) => r.revokedAt && r.revokedAt.getTime() <= now.getTime())) return 'revoked';
  if (mine.some((r) => now.getTime() >= r.validUntil.getTime())) return 'expired';
  return 'not yet valid';
}

/** Answers the edge's question about a live session's key; `SshKeyStore` is one. */
export interface KeyStatusSource {
  keyStatus(fingerprint: string, now: Date): KeyStatus | Promise<KeyStatus>;
}

/** A live, authenticated session of the edge's sshd: its per-connection process and the key it logged in with. */
export interface EdgeSession {
  /** The per-connection sshd process (the `[priv]` monitor, a child of the listening sshd). */
  pid: number;
  fingerprint: string;
  user: string;
  address: string;
  port: number;
  /** When the edge read the login from sshd's log. */
  since: Date;
}

export type CutReason = Exclude<KeyStatus, 'valid'> | 'session too old';

export interface SessionCut {
  session: EdgeSession;
  reason: CutReason;
}

/**
 * The sessions to end at `now`, and why: the key's own status first (a revoked key says so even
 * when the session is also old), then the edge's age limit, `since + maxSessionMs` included.
 */
export function sessionsToCut(sessions: readonly EdgeSession[], statusOf: (fingerprint: string) => KeyStatus, now: Date, maxSessionMs: number): SessionCut[] {
  const cuts: SessionCut[] = [];
  for (const session of sessions) {
    const status = statusOf(session.fingerprint);
    if (status !== 'valid') cuts.push({ session, reason: status });
    else if (now.getTime() - session.since.getTime() >= maxSessionMs) cuts.push({ session, reason: 'session too old' });
  }
  return cuts;
}
