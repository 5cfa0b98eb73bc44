import { once } from 'node:events';
import { chmod, chown, rm } from 'node:fs/promises';
import { type Server, createServer } from 'node:http';
import { type AuthorizedKeysQuery, type SshKeyRecord, authorizedKeysAnswer, parsePublicKey } from './key-records.js';
import { type KeyStatus, type KeyStatusSource, keyStatusAt } from './sessions.js';

// Where the edge's AuthorizedKeysCommand gets its answer: HTTP on a unix socket served by the edge
// process from the keys it keeps current. Chosen over a file the process rewrites: the answer is
// computed at the moment sshd asks (an expiry passes without anyone rewriting anything), and a
// dead edge process means no answer at all, so the command fails closed instead of serving a
// stale file. A socket path rather than a TCP port: it is reached from sshd's network namespace
// whichever namespace the edge process is in, and file permissions limit it to one account.

/** Answers sshd's question; tunnel-manager backs it with its table, tests with an `SshKeyStore`. */
export interface AuthorizedKeysSource {
  authorizedKeys(query: AuthorizedKeysQuery, now: Date): string[] | Promise<string[]>;
}

/** The keys of one edge in memory, keyed by their blob (comments differ, keys do not). */
export class SshKeyStore implements AuthorizedKeysSource, KeyStatusSource {
  private readonly records = new Map<string, SshKeyRecord>();

  constructor(private readonly tunnelUser: string) {}

  /**
   * Adds a key or replaces the record of the same key (a rotation shortening its validity).
   * `permitlisten` is what keeps one node off another's port, so a port held by a key of
   * another path that is not over yet (neither expired nor revoked) is refused.
   */
  put(record: SshKeyRecord, now: Date = new Date()): void {
    const id = blob(record.publicKey);
    for (const [other, r] of this.records) {
      if (other === id || r.pathId === record.pathId || r.permitListenPort !== record.permitListenPort) continue;
      if (r.validUntil > now && !(r.revokedAt && r.revokedAt <= now)) {
        throw new Error(`port ${record.permitListenPort} is held by a key of path ${r.pathId} until ${r.validUntil.toISOString()}`);
      }
    }
    this.records.set(id, { ...record });
  }

  /** Refused from `at` on; the record stays for the audit trail. */
  revoke(publicKey: string, at: Date = new Date()): void {
    const r = this.records.get(blob(publicKey));
    if (!r) throw new Error('revoke: no such key');
    this.records.set(blob(publicKey), { ...r, revokedAt: at });
  }

  remove(publicKey: string): void {
    this.records.delete(blob(publicKey));
  }

  list(): SshKeyRecord[] {
    return [...this.records.values()].map((r) => ({ ...r }));
  }

  authorizedKeys(query: AuthorizedKeysQuery, now: Date): string[] {
    return authorizedKeysAnswer(this.records.values(), query, this.tunnelUser, now);
  }

  /** The edge's question about a live session, by the fingerprint sshd logged at its login. */
  keyStatus(fingerprint: string, now: Date): KeyStatus {
    return keyStatusAt(this.records.values(), fingerprint, now);
  }
}

function blob(publicKey: string): string {
  const { type, key } = parsePublicKey(publicKey);
  return `${type} ${key}`;
}

export interface KeySourceServer {
  readonly socketPath: string;
  /** How many questions were answered (a test sees sshd asking). */
  readonly asked: number;
  close(): Promise<void>;
}

export interface KeySourceOptions {
  socketPath: string;
  source: AuthorizedKeysSource;
  /** The socket is this account's alone (0600): the AuthorizedKeysCommandUser. */
  owner: { uid: number; gid: number };
  now?: () => Date;
}

export async function serveAuthorizedKeys(opts: KeySourceOptions): Promise<KeySourceServer> {
  const now = opts.now ?? (() => new Date());
  let asked = 0;
  const server: Server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://edge');
    if (req.method !== 'GET' || url.pathname !== '/authorized-keys') {
      res.writeHead(404).end();
      return;
    }
    const [user, key, type] = ['user', 'key', 'type'].map((k) => url.searchParams.get(k) ?? '');
    if (!user || !key || !type) {
      res.writeHead(400, { 'Content-Type': 'text/plain' }).end('user, key and type are required\n');
      return;
    }
    asked++;
    try {
      const lines = await opts.source.authorizedKeys({ user, key, type }, now());
      res.writeHead(200, { 'Content-Type': 'text/plain' }).end(lines.map((l) => `${l}\n`).join(''));
    } catch {
      // A source that cannot answer refuses: the command prints nothing on a 500.
      res.writeHead(500).end();
    }
  });
  // A socket left by a process that died would make listen fail with EADDRINUSE.
  await rm(opts.socketPath, { force: true });
  server.listen(opts.socketPath);
  await once(server, 'listening');
  await chown(opts.socketPath, opts.owner.uid, opts.owner.gid);
  await chmod(opts.socketPath, 0o600);
  return {
    socketPath: opts.socketPath,
    get asked() {
      return asked;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(opts.socketPath, { force: true });
    },
  };
}
