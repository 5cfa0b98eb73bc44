import { join } from 'node:path';
import { sql, type Kysely, uniqueViolationOf } from '@switchyard/db';
import { OrderFailure } from '@switchyard/service-kit';
import {
  forgetProcess,
  pollUntil,
  probe,
  recordProcess,
  rotateRecords,
  type SshEdge,
  sshFingerprint,
  type SshKeyRecord,
  SshKeyStore,
  startSshEdge,
  type Target,
} from '@switchyard/tunnels';
import { keyLifetimeMs, lowestFreePort, type NodeRoute } from './plan.js';
import type { Database, TunnelKeyRow, TunnelRow } from './tables.js';

export interface SshPathSettings {
  sshPort: number;
  sshForwardRange: [number, number];
  stateDir: string;
  sshUser: string;
  keysUser: string;
  keyOverlapMs: number;
  /** Where the edge's sshd listens: loopback in single-host mode, an address node hosts reach otherwise. */
  sshHost: string;
}

/** An ssh path's client end as the edge drives it: a local `ssh -R`, or one a node host's agent runs. */
export interface SessionHandle {
  waitFor(status: 'up', timeoutMs: number): Promise<unknown>;
  stop(): Promise<void>;
  /** Ends once `drained` resolves or at `deadline`, whichever is first. */
  retire(drained: Promise<unknown>, deadline: Date): Promise<void>;
  /** A pool's session (balanced): its nodes changed. A node's session has a fixed forward instead. */
  setTargets?(targets: readonly Target[]): void;
}

/**
 * Where the ssh paths' private keys and clients live: this host (single-host mode) or a node
 * host's agent (edge role, edge-hosts.ts); local-side.ts is the former. Private halves never leave that side.
 */
export interface NodeSide {
  /** A new key pair there; its public half. */
  createKey(keyId: string): Promise<string>;
  /** Its private half gone (or going: an agent deletes what the edge no longer keeps). */
  discardKey(keyId: string): Promise<void>;
  /** Whether that side still holds the private half. */
  holdsKey(keyId: string): Promise<boolean>;
  /** A session of the key forwarding the edge's loopback port to the node (or a pool's nodes); started. */
  startSession(key: SessionKey, route: SessionRoute, edge: EdgeSshAddress, tunnelId: string): Promise<SessionHandle>;
}

export type SessionKey = Pick<TunnelKeyRow, 'key_id' | 'listen_port'>;
export type SessionRoute = Pick<NodeRoute, 'targets' | 'balanced'>;

/** Where a node side's ssh dials the edge's sshd, as whom, and the host key it pins there. */
export interface EdgeSshAddress {
  host: string;
  port: number;
  user: string;
  knownHostsLine: string;
}

export interface SshPathDeps {
  db: Kysely<Database>;
  side: NodeSide;
  log: { info(o: object, msg: string): void; warn(o: object, msg: string): void };
  settings: SshPathSettings;
  /** tunnel-manager is stopping: no more waiting, no revocation a next start must decide. */
  stopped(): boolean;
}

export interface SshSession {
  key: TunnelKeyRow;
  session: SessionHandle;
}

const ATTEMPTS = 20;
/** A revoked key's forward port is not handed out again for this long: its session may still be ending. */
const PORT_QUARANTINE_MS = 120_000;

/**
 * The ssh paths: the edge's sshd and its key store, the keys' rows, and through the node side
 * (this host's, or a node host agent's) the private halves and one `ssh -R` session per key.
 * Which key a tunnel uses when is TunnelManager's; how a key is made, started, retired and
 * revoked is this.
 */
export class SshPaths {
  private readonly keys: SshKeyStore;
  private starting: Promise<SshEdge> | undefined;

  constructor(private readonly d: SshPathDeps) {
    this.keys = new SshKeyStore(d.settings.sshUser);
  }

  /** A key record for the edge (a rotation's shortened one). */
  put(record: SshKeyRecord, now: Date): void {
    this.keys.put(record, now);
  }

  /** A closed tunnel's keys out of the edge's store and off the disk; then its sessions are cut. */
  async forget(keys: readonly TunnelKeyRow[]): Promise<void> {
    for (const k of keys) {
      this.keys.remove(k.public_key);
      await this.d.side.discardKey(k.key_id);
    }
    await this.enforce();
  }

  /** The edge's sshd ended, if it was started. */
  async stop(): Promise<void> {
    const edge = await this.starting?.catch(() => undefined);
    if (!edge) return;
    await edge.stop();
    await forgetProcess(this.d.settings.stateDir, 'sshd');
  }

  /**
   * The ssh path's current key, reused when the node side still holds its private half, and its
   * session. The others are over: no session of theirs survived the restart.
   */
  async session(row: TunnelRow, route: NodeRoute): Promise<SshSession> {
    const now = new Date();
    const keys = await this.d.db
      .selectFrom('tunnel_keys')
      .selectAll()
      .where('tenant_id', '=', row.tenant_id)
      .where('tunnel_id', '=', row.id)
      .where('revoked_at', 'is', null)
      .orderBy('created_at', 'desc')
      .execute();
    const newest = keys[0];
    const usable = newest && !newest.superseded_at && newest.valid_until > now && (await this.d.side.holdsKey(newest.key_id));
    for (const k of keys) if (!usable || k !== newest) await this.revokeKey(k, now);
    let key: TunnelKeyRow;
    if (usable) {
      key = newest;
      this.keys.put(toRecord(key), now);
    } else key = await this.newKey(row, now, undefined);
    return this.startSession(row, key, route);
  }

  /** A key pair on the node side, and its row with a forward port no live key holds (the index settles a race). */
  async newKey(row: TunnelRow, now: Date, replacing: TunnelKeyRow | undefined): Promise<TunnelKeyRow> {
    const { db, settings } = this.d;
    const count = await db
      .selectFrom('tunnel_keys')
      .select(sql<number>`count(*)::int`.as('n'))
      .where('tenant_id', '=', row.tenant_id)
      .where('tunnel_id', '=', row.id)
      .executeTakeFirstOrThrow();
    const keyId = `${row.id}.ssh.${count.n + 1}`;
    const publicKey = await this.d.side.createKey(keyId);
    const lifetimeMs = keyLifetimeMs(row.spec);
    // Ports something still listens on: a session of a key whose row is gone (a closed tunnel's, a crashed run's).
    const busy = new Set<number>();
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const taken = await db
        .selectFrom('tunnel_keys')
        .select('listen_port')
        .where((w) => w.or([w('revoked_at', 'is', null), w('revoked_at', '>', new Date(now.getTime() - PORT_QUARANTINE_MS))]))
        .execute();
      const listenPort = lowestFreePort(settings.sshForwardRange[0], settings.sshForwardRange[1], new Set([...taken.map((k) => k.listen_port), ...busy]));
      if (listenPort === undefined) {
        await this.d.side.discardKey(keyId);
        throw new OrderFailure(`no free SSH forward port left in ${settings.sshForwardRange.join('-')}`);
      }
      if ((await probe({ host: '127.0.0.1', port: listenPort }, 500)).ok) {
        busy.add(listenPort);
        continue;
      }
      const record: SshKeyRecord = replacing
        ? rotateRecords(toRecord(replacing), { publicKey, permitListenPort: listenPort }, { now, overlapMs: settings.keyOverlapMs, lifetimeMs }).next
        : { publicKey, pathId: pathIdOf(row.id), permitListenPort: listenPort, validFrom: now, validUntil: new Date(now.getTime() + lifetimeMs) };
      const key: TunnelKeyRow = {
        tenant_id: row.tenant_id,
        tunnel_id: row.id,
        key_id: keyId,
        path: 'ssh',
        public_key: publicKey,
        fingerprint: sshFingerprint(publicKey),
        listen_port: listenPort,
        created_at: now,
        valid_until: record.validUntil,
        superseded_at: null,
        revoked_at: null,
      };
      try {
        await db.insertInto('tunnel_keys').values(key).execute();
      } catch (err) {
        if (uniqueViolationOf(err) === 'tunnel_keys_live_port') continue;
        await this.d.side.discardKey(keyId);
        throw err;
      }
      this.keys.put(record, now);
      return key;
    }
    await this.d.side.discardKey(keyId);
    throw new Error(`could not take an SSH forward port in ${ATTEMPTS} attempts`);
  }

  async startSession(row: TunnelRow, key: TunnelKeyRow, route: NodeRoute): Promise<SshSession> {
    const edge = await this.edge();
    const session = await this.d.side.startSession(
      key,
      route,
      { host: edge.listenAddress, port: edge.port, user: this.d.settings.sshUser, knownHostsLine: edge.knownHostsLine() },
      row.id,
    );
    this.d.log.info({ tunnelId: row.id, fingerprint: key.fingerprint, listenPort: key.listen_port }, 'ssh session starting');
    return { key, session };
  }

  async endSession(s: SshSession): Promise<void> {
    await s.session.stop();
    await forgetProcess(this.d.settings.stateDir, s.key.key_id);
  }

  edge(): Promise<SshEdge> {
    this.starting ??= (async () => {
      const { settings } = this.d;
      const edge = await startSshEdge({
        dir: join(settings.stateDir, 'edge'),
        listenAddress: settings.sshHost,
        port: settings.sshPort,
        tunnelUser: settings.sshUser,
        commandUser: settings.keysUser,
        keys: this.keys,
        clientAliveIntervalSec: 5,
        clientAliveCountMax: 3,
        sessions: { onCut: (cut) => this.d.log.info({ fingerprint: cut.fingerprint, reason: cut.reason }, 'the edge ended an ssh session') },
      });
      await recordProcess(settings.stateDir, 'sshd', edge.pid);
      return edge;
    })();
    const starting = this.starting;
    starting.catch(() => {
      if (this.starting === starting) this.starting = undefined;
    });
    return starting;
  }

  /** The old session ends once no connection is open over its port (or at the overlap's end); then its key is revoked. */
  async retire(old: SshSession, deadline: Date): Promise<void> {
    try {
      const edge = await this.edge();
      const drained = pollUntil(
        () => edge.openConnections(old.key.listen_port),
        (open) => open === 0 || this.d.stopped(),
        Math.max(0, deadline.getTime() - Date.now()),
        500,
      );
      await old.session.retire(drained, deadline);
      await forgetProcess(this.d.settings.stateDir, old.key.key_id);
      // Stopping: its overlap may not be over; the next start ends it (sshSession).
      if (!this.d.stopped()) await this.revokeKey(old.key, new Date());
    } catch (err) {
      this.d.log.warn({ fingerprint: old.key.fingerprint, err: (err as Error).message }, 'could not retire an ssh session');
    }
  }

  /** Refused by the edge from now on, its session cut, its private half deleted; the row stays as the record. */
  async revokeKey(k: TunnelKeyRow, at: Date): Promise<void> {
    this.keys.remove(k.public_key);
    await this.d.db
      .updateTable('tunnel_keys')
      .set({ revoked_at: at })
      .where('tenant_id', '=', k.tenant_id)
      .where('tunnel_id', '=', k.tunnel_id)
      .where('key_id', '=', k.key_id)
      .where('revoked_at', 'is', null)
      .execute();
    await this.d.side.discardKey(k.key_id);
    await this.enforce();
  }

  /** Sessions of keys just taken out are cut now, not at the edge's next pass. */
  async enforce(): Promise<void> {
    const edge = await this.starting?.catch(() => undefined);
    await edge?.enforce().catch((err: Error) => this.d.log.warn({ err: err.message }, 'could not end the sessions of revoked keys now; the edge tries again on its own'));
  }
}

export const pathIdOf = (tunnelId: string) => `${tunnelId}.ssh`;

export function toRecord(k: TunnelKeyRow): SshKeyRecord {
  return { publicKey: k.public_key, pathId: pathIdOf(k.tunnel_id), permitListenPort: k.listen_port, validFrom: k.created_at, validUntil: k.valid_until, revokedAt: k.revoked_at };
}
