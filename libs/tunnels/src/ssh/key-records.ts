// The public halves of the SSH path keys and what the edge's sshd may do with each: pure
// functions over records, so the same answer is given whether the records come from memory or
// from tunnel-manager's table.

/** One tunnel key as the edge knows it. The private half never leaves the node's host. */
export interface SshKeyRecord {
  /** `ssh-ed25519 AAAA… comment`, as ssh-keygen wrote the `.pub` file. */
  publicKey: string;
  /** The tunnel path the key belongs to. */
  pathId: string;
  /** The one port on the edge's loopback this key may listen on (`-R 127.0.0.1:<port>:…`). */
  permitListenPort: number;
  validFrom: Date;
  /** Expiry: refused from this instant on, by the key source and by sshd itself (`expiry-time`). */
  validUntil: Date;
  revokedAt?: Date | null;
}

/** What sshd asks through AuthorizedKeysCommand (`%u %k %t`). */
export interface AuthorizedKeysQuery {
  user: string;
  /** Base64 of the key blob (`%k`). */
  key: string;
  /** Key type, e.g. `ssh-ed25519` (`%t`). */
  type: string;
}

export interface ParsedPublicKey {
  type: string;
  key: string;
  comment: string;
}

const KEY_TYPE = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com)$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** Reads an OpenSSH public key line; throws on anything else (a line with options, a private key). */
export function parsePublicKey(line: string): ParsedPublicKey {
  const [type = '', key = '', ...rest] = line.trim().split(/\s+/);
  if (!KEY_TYPE.test(type) || !BASE64.test(key)) throw new Error(`not an OpenSSH public key: ${line.slice(0, 40)}…`);
  return { type, key, comment: rest.join(' ') };
}

/** The same key, whatever its comment. */
export function sameKey(a: string, b: ParsedPublicKey): boolean {
  const p = parsePublicKey(a);
  return p.type === b.type && p.key === b.key;
}

export function isValidAt(record: SshKeyRecord, now: Date): boolean {
  if (record.revokedAt && record.revokedAt.getTime() <= now.getTime()) return false;
  return record.validFrom.getTime() <= now.getTime() && now.getTime() < record.validUntil.getTime();
}

/** sshd's `expiry-time` in UTC, YYYYMMDDHHMMSSZ: without the `Z` sshd would read the edge's local time. */
export function expiryTime(at: Date): string {
  return at
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replace(/[-:T]/g, '');
}

/**
 * The authorized_keys line for a record. `restrict` turns everything off (pty, agent, X11, port
 * forwarding, ~/.ssh/rc); `port-forwarding` turns forwarding back on and `permitlisten` narrows it
 * to the key's own port, so one node's key cannot take over another node's port. The expiry is
 * repeated for sshd, which enforces it at authentication even if a stale answer carried the key.
 * The comment is dropped: it is the node's label, of no use to sshd.
 */
export function authorizedKeyLine(record: SshKeyRecord): string {
  const { type, key } = parsePublicKey(record.publicKey);
  const port = record.permitListenPort;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`permitListenPort out of range: ${port}`);
  return `restrict,port-forwarding,permitlisten="127.0.0.1:${port}",expiry-time="${expiryTime(record.validUntil)}" ${type} ${key}`;
}

/**
 * The answer to sshd's question: the lines for the asked key, if it belongs to the tunnel user and
 * is valid now. Nothing for anything else; sshd then refuses the key.
 */
export function authorizedKeysAnswer(records: Iterable<SshKeyRecord>, query: AuthorizedKeysQuery, tunnelUser: string, now: Date): string[] {
  if (query.user !== tunnelUser) return [];
  const asked = { type: query.type, key: query.key, comment: '' };
  const lines: string[] = [];
  for (const r of records) {
    if (isValidAt(r, now) && sameKey(r.publicKey, asked)) lines.push(authorizedKeyLine(r));
  }
  return lines;
}

export interface RotationTimes {
  now: Date;
  /** How long the retiring key stays valid next to the new one. */
  overlapMs: number;
  /** How long the new key is valid (its expiry). */
  lifetimeMs: number;
}

/**
 * A rotation's two records: the new key valid from now, and the current one cut short to the end
 * of the overlap (never lengthened). Both are valid during the overlap, which is what lets the old
 * session carry its open connections while new ones go through the new session.
 */
export function rotateRecords(current: SshKeyRecord, next: { publicKey: string; permitListenPort: number }, times: RotationTimes): { retiring: SshKeyRecord; next: SshKeyRecord } {
  if (next.permitListenPort === current.permitListenPort) {
    // The old session still holds its port until it drains: the new one must listen elsewhere.
    throw new Error(`the new key needs another port than ${current.permitListenPort}`);
  }
  const now = times.now.getTime();
  const overlapEnd = new Date(Math.min(current.validUntil.getTime(), now + times.overlapMs));
  return {
    retiring: { ...current, validUntil: overlapEnd },
    next: { publicKey: next.publicKey, pathId: current.pathId, permitListenPort: next.permitListenPort, validFrom: times.now, validUntil: new Date(now + times.lifetimeMs) },
  };
}
