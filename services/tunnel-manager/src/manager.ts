import { access, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { NodeView, Payload, PublishedPort, ReplyOf, TunnelPathKind, TunnelSpec } from '@switchyard/contracts';
import { sql, type Kysely } from '@switchyard/db';
import { OrderFailure } from '@switchyard/service-kit';
import {
  type Forwarder,
  type ForwarderEvent,
  generateClientKey,
  removeClientKey,
  ReverseTunnel,
  rotateRecords,
  type SshEdge,
  SshKeyStore,
  type SshKeyRecord,
  sshFingerprint,
  startForwarder,
  startSshEdge,
} from '@switchyard/tunnels';
import { forgetProcess, recordProcess } from './leftovers.js';
import { forwarderPaths, keyLifetimeMs, lowestFreePort, nextRotation, publishedPort, sshTarget, withTunnelDefaults } from './plan.js';
import type { Database, TunnelKeyRow, TunnelRow } from './tables.js';

type Publish = <S extends 'tunnel.evt.opened' | 'tunnel.evt.closed' | 'tunnel.evt.up' | 'tunnel.evt.down' | 'tunnel.evt.failover' | 'tunnel.evt.rotated' | 'tunnel.evt.expired'>(
  subject: S,
  payload: Payload<S>,
) => Promise<void>;

export interface Log {
  info(o: object, msg: string): void;
  warn(o: object, msg: string): void;
}

export interface ManagerSettings {
  edgeHost: string;
  publicHost: string;
  portRange: [number, number];
  sshPort: number;
  sshForwardRange: [number, number];
  stateDir: string;
  sshUser: string;
  keysUser: string;
  keyOverlapMs: number;
}

export interface ManagerDeps {
  db: Kysely<Database>;
  publish: Publish;
  log: Log;
  settings: ManagerSettings;
  /** The tenant's nodes as exit-node-manager holds them (pool.req.snapshot). */
  nodes(tenantId: string): Promise<readonly NodeView[]>;
}

interface PathStatus {
  state: 'up' | 'down' | 'unknown';
  latencyMs: number | null;
  reason: string | null;
  changedAt: Date | null;
}

interface SshSession {
  key: TunnelKeyRow;
  privateKeyPath: string;
  session: ReverseTunnel;
}

/** A tunnel that runs here: its endpoint, and the SSH session of its ssh path. */
interface LiveTunnel {
  row: TunnelRow;
  forwarder: Forwarder;
  target: PublishedPort;
  ssh: SshSession | undefined;
  paths: Map<TunnelPathKind, PathStatus>;
  /** Set while a rotation runs: one at a time. */
  rotating: Promise<void> | undefined;
}

const UP_TIMEOUT_MS = 30_000;

/**
 * Opens, rotates and closes tunnels in single-host mode: this host is the edge and the node's
 * host at once. Rows first, then the processes, so that a restart finds every tunnel in the
 * tables and builds it again (`restore`).
 */
export class TunnelManager {
  private readonly live = new Map<string, LiveTunnel>();
  private readonly keys: SshKeyStore;
  private edge: Promise<SshEdge> | undefined;
  private stopped = false;

  constructor(private readonly d: ManagerDeps) {
    this.keys = new SshKeyStore(d.settings.sshUser);
  }

  // ---- commands ----

  async open(p: Payload<'tunnel.cmd.open'>): Promise<{ tunnelId: string; endpoint: { host: string; port: number } }> {
    const { db } = this.d;
    const existing = await this.row(p.tenantId, p.tunnelId);
    if (!existing) {
      const clash = await db.selectFrom('tunnels').select('id').where('tenant_id', '=', p.tenantId).where('name', '=', p.spec.name).executeTakeFirst();
      if (clash) throw new OrderFailure(`a tunnel named ${p.spec.name} exists already (${clash.id})`);
      const { paths, unavailable } = forwarderPaths(p.spec, (await this.nodePort(p.tenantId, p.spec)).hostPort, 0);
      if (paths.length === 0) throw new OrderFailure(`no path of this tunnel can run here: ${unavailable.map((u) => `${u.kind}: ${u.reason}`).join('; ')}`);
      await this.insert(p);
    }
    const row = (await this.row(p.tenantId, p.tunnelId))!;
    let t: LiveTunnel;
    try {
      t = await this.ensureLive(row);
    } catch (err) {
      // A tunnel that never ran is not kept: the failed order leaves nothing behind.
      if (!existing) await this.forget(row);
      throw err;
    }
    const endpoint = this.endpoint(t.row);
    if (!existing) await this.emit('tunnel.evt.opened', t.row, { endpoint });
    return { tunnelId: p.tunnelId, endpoint };
  }

  async close(p: Payload<'tunnel.cmd.close'>, reason = 'closed by its owner'): Promise<void> {
    const row = await this.row(p.tenantId, p.tunnelId);
    if (!row) throw new OrderFailure(`unknown tunnel ${p.tunnelId}`);
    await this.stopLive(row.id, { dropConnections: true });
    await this.forget(row);
    await this.emit('tunnel.evt.closed', row, { endpoint: null, reason });
  }

  /** Its keys out of the edge and off the disk, then its rows. */
  private async forget(row: TunnelRow): Promise<void> {
    const keys = await this.d.db.selectFrom('tunnel_keys').selectAll().where('tenant_id', '=', row.tenant_id).where('tunnel_id', '=', row.id).execute();
    for (const k of keys) {
      this.keys.remove(k.public_key);
      await removeClientKey({ privateKeyPath: this.keyPath(k.key_id) });
    }
    await this.d.db.deleteFrom('tunnels').where('tenant_id', '=', row.tenant_id).where('id', '=', row.id).execute();
  }

  async rotate(p: Payload<'tunnel.cmd.rotate'>, reason = 'asked for'): Promise<string[]> {
    const row = await this.row(p.tenantId, p.tunnelId);
    if (!row) throw new OrderFailure(`unknown tunnel ${p.tunnelId}`);
    const t = await this.ensureLive(row);
    return this.rotateLive(t, reason);
  }

  async list(p: Payload<'tunnel.req.list'>): Promise<ReplyOf<'tunnel.req.list'>> {
    let q = this.d.db.selectFrom('tunnels').selectAll().where('tenant_id', '=', p.tenantId);
    if (p.tunnelId) q = q.where('id', '=', p.tunnelId);
    const rows = await q.orderBy('created_at').execute();
    if (rows.length === 0) return { tunnels: [] };
    const ids = rows.map((r) => r.id);
    const [keys, stored] = await Promise.all([
      this.d.db
        .selectFrom('tunnel_keys')
        .selectAll()
        .where('tenant_id', '=', p.tenantId)
        .where('tunnel_id', 'in', ids)
        .where('revoked_at', 'is', null)
        .orderBy('created_at', 'desc')
        .execute(),
      this.d.db.selectFrom('tunnel_paths').selectAll().where('tenant_id', '=', p.tenantId).where('tunnel_id', 'in', ids).execute(),
    ]);
    return {
      tunnels: rows.map((row) => {
        const t = this.live.get(row.id);
        const current = t?.forwarder.state().current;
        const latest = keys.find((k) => k.tunnel_id === row.id);
        return {
          tenantId: row.tenant_id,
          tunnelId: row.id,
          spec: row.spec,
          status: t ? ('open' as const) : ('failed' as const),
          reason: t ? null : 'not running on the edge now; tunnel-manager builds it again at its next resync',
          endpoint: t ? this.endpoint(row) : null,
          paths: row.spec.paths.map((path) => {
            const kept = stored.find((r) => r.tunnel_id === row.id && r.kind === path.kind);
            const status: PathStatus =
              t?.paths.get(path.kind) ??
              (kept
                ? { state: kept.state, latencyMs: kept.latency_ms, reason: kept.reason, changedAt: kept.changed_at }
                : { state: 'unknown', latencyMs: null, reason: null, changedAt: null });
            const key =
              path.kind === 'ssh' && latest ? { fingerprint: latest.fingerprint, createdAt: latest.created_at.toISOString(), expiresAt: latest.valid_until.toISOString() } : null;
            return {
              kind: path.kind,
              ...(path.address ? { address: path.address } : {}),
              state: status.state,
              active: current === path.kind,
              latencyMs: status.latencyMs === null ? null : Math.round(status.latencyMs * 100) / 100,
              reason: status.reason,
              changedAt: status.changedAt ? status.changedAt.toISOString() : null,
              key,
            };
          }),
          createdAt: row.created_at.toISOString(),
          rotatedAt: row.rotated_at.toISOString(),
          nextRotationAt: nextRotation(row.rotated_at, row.spec).toISOString(),
        };
      }),
    };
  }

  // ---- node events ----

  /** A node started: its host port may have changed, so each of its tunnels is aimed again. */
  async nodeStarted(p: Payload<'node.evt.started'>): Promise<void> {
    for (const t of this.live.values()) {
      if (t.row.node_id !== p.nodeId || t.row.tenant_id !== p.tenantId) continue;
      const port = publishedPort(p.ports, t.row.spec.port);
      if (typeof port !== 'string') await this.retarget(t, port);
    }
  }

  async nodeRemoved(p: Payload<'node.evt.removed'>): Promise<void> {
    const rows = await this.d.db.selectFrom('tunnels').selectAll().where('tenant_id', '=', p.tenantId).where('node_id', '=', p.nodeId).execute();
    for (const row of rows) await this.close({ tenantId: row.tenant_id, tunnelId: row.id }, `its node was removed (${p.reason})`);
  }

  // ---- start, resync, schedule, stop ----

  /** Every stored tunnel running again, aimed at where its node is now; tunnels of removed nodes closed. */
  async restore(): Promise<void> {
    const rows = await this.d.db.selectFrom('tunnels').selectAll().execute();
    for (const row of rows) {
      if (this.stopped) return;
      try {
        const t = await this.ensureLive(row);
        const port = await this.nodePort(row.tenant_id, row.spec).catch(() => undefined);
        if (port) await this.retarget(t, port);
      } catch (err) {
        if (err instanceof OrderFailure && /unknown node/.test(err.message)) {
          await this.close({ tenantId: row.tenant_id, tunnelId: row.id }, 'its node is gone');
          continue;
        }
        this.d.log.warn({ tunnelId: row.id, err: (err as Error).message }, 'tunnel not running yet; tried again at the next resync');
      }
    }
  }

  /** Rotates what is due (weekly by default) and takes expired keys out of the edge. */
  async checkKeys(now = new Date()): Promise<void> {
    const expired = await this.d.db
      .selectFrom('tunnel_keys')
      .innerJoin('tunnels', (j) => j.onRef('tunnels.tenant_id', '=', 'tunnel_keys.tenant_id').onRef('tunnels.id', '=', 'tunnel_keys.tunnel_id'))
      .selectAll('tunnel_keys')
      .select(['tunnels.name', 'tunnels.node_id'])
      .where('tunnel_keys.revoked_at', 'is', null)
      .where('tunnel_keys.valid_until', '<=', now)
      .execute();
    for (const k of expired) {
      await this.revokeKey(k, now);
      const row = await this.row(k.tenant_id, k.tunnel_id);
      if (row) await this.emit('tunnel.evt.expired', row, { paths: ['ssh'], reason: `the ssh key ${k.fingerprint} expired at ${k.valid_until.toISOString()}` });
    }
    for (const t of this.live.values()) {
      const current = t.ssh?.key;
      const lost = current !== undefined && current.revoked_at === null && current.valid_until <= now;
      if (lost || nextRotation(t.row.rotated_at, t.row.spec) <= now) {
        await this.rotateLive(t, lost ? 'its key expired' : 'scheduled').catch((err: Error) =>
          this.d.log.warn({ tunnelId: t.row.id, err: err.message }, 'rotation failed; tried again at the next check'),
        );
      }
    }
  }

  /** Ends the endpoints and sessions; rows and keys stay, so the next start builds them again. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const id of [...this.live.keys()]) await this.stopLive(id, { dropConnections: false });
    const edge = await this.edge?.catch(() => undefined);
    await edge?.stop();
    if (edge) await forgetProcess(this.d.settings.stateDir, 'sshd');
  }

  // ---- the parts ----

  private async ensureLive(row: TunnelRow): Promise<LiveTunnel> {
    const running = this.live.get(row.id);
    if (running) return running;
    const target = await this.nodePort(row.tenant_id, row.spec);
    const spec = withTunnelDefaults(row.spec);
    const ssh = spec.paths.some((p) => p.kind === 'ssh') ? await this.sshSession(row, target) : undefined;
    const { paths, unavailable } = forwarderPaths(spec, target.hostPort, ssh?.key.listen_port);
    const statuses = new Map<TunnelPathKind, PathStatus>(spec.paths.map((p) => [p.kind, { state: 'unknown', latencyMs: null, reason: null, changedAt: null }]));
    for (const u of unavailable) statuses.set(u.kind, { state: 'down', latencyMs: null, reason: u.reason, changedAt: new Date() });
    if (paths.length === 0) {
      await ssh?.session.stop();
      throw new OrderFailure(`no path of this tunnel can run here: ${unavailable.map((u) => `${u.kind}: ${u.reason}`).join('; ')}`);
    }
    const t: LiveTunnel = { row, target, ssh, paths: statuses, rotating: undefined, forwarder: undefined as unknown as Forwarder };
    try {
      t.forwarder = await startForwarder({
        host: this.d.settings.edgeHost,
        port: row.public_port,
        paths,
        intervalMs: spec.probeIntervalMs,
        fall: spec.fall,
        holdDownMs: spec.holdDownMs,
        onEvent: (e) => void this.onForwarderEvent(t, e),
      });
    } catch (err) {
      await ssh?.session.stop();
      throw err;
    }
    this.live.set(row.id, t);
    for (const u of unavailable) await this.savePath(t, u.kind);
    this.d.log.info({ tunnelId: row.id, endpoint: this.endpoint(row), paths: spec.paths.map((p) => p.kind) }, 'tunnel running');
    return t;
  }

  private async stopLive(id: string, opts: { dropConnections: boolean }): Promise<void> {
    const t = this.live.get(id);
    if (!t) return;
    this.live.delete(id);
    await t.forwarder.stop(opts);
    if (t.ssh) await this.endSession(t.ssh);
  }

  /** The ssh path's current key (reused when its private half is still on this host) and its session. */
  private async sshSession(row: TunnelRow, target: PublishedPort): Promise<SshSession> {
    const now = new Date();
    const keys = await this.d.db
      .selectFrom('tunnel_keys')
      .selectAll()
      .where('tenant_id', '=', row.tenant_id)
      .where('tunnel_id', '=', row.id)
      .where('revoked_at', 'is', null)
      .orderBy('created_at', 'desc')
      .execute();
    for (const k of keys) this.keys.put(toRecord(k), now);
    const current = keys.find((k) => k.valid_until > now);
    const key = current && (await exists(this.keyPath(current.key_id))) ? current : await this.newKey(row, now, undefined);
    return this.startSession(row, key, target);
  }

  private async newKey(row: TunnelRow, now: Date, replacing: TunnelKeyRow | undefined): Promise<TunnelKeyRow> {
    const taken = await this.d.db.selectFrom('tunnel_keys').select('listen_port').where('revoked_at', 'is', null).execute();
    const listenPort = lowestFreePort(this.d.settings.sshForwardRange[0], this.d.settings.sshForwardRange[1], new Set(taken.map((k) => k.listen_port)));
    if (listenPort === undefined) throw new OrderFailure(`no free SSH forward port left in ${this.d.settings.sshForwardRange.join('-')}`);
    const count = await this.d.db
      .selectFrom('tunnel_keys')
      .select(sql<number>`count(*)::int`.as('n'))
      .where('tenant_id', '=', row.tenant_id)
      .where('tunnel_id', '=', row.id)
      .executeTakeFirstOrThrow();
    const keyId = `${row.id}.ssh.${count.n + 1}`;
    const client = await generateClientKey(join(this.d.settings.stateDir, 'keys'), keyId);
    const lifetimeMs = keyLifetimeMs(row.spec);
    const record: SshKeyRecord = replacing
      ? rotateRecords(toRecord(replacing), { publicKey: client.publicKey, permitListenPort: listenPort }, { now, overlapMs: this.d.settings.keyOverlapMs, lifetimeMs }).next
      : { publicKey: client.publicKey, pathId: `${row.id}.ssh`, permitListenPort: listenPort, validFrom: now, validUntil: new Date(now.getTime() + lifetimeMs) };
    const key: TunnelKeyRow = {
      tenant_id: row.tenant_id,
      tunnel_id: row.id,
      key_id: keyId,
      path: 'ssh',
      public_key: client.publicKey,
      fingerprint: sshFingerprint(client.publicKey),
      listen_port: listenPort,
      created_at: now,
      valid_until: record.validUntil,
      revoked_at: null,
    };
    await this.d.db.insertInto('tunnel_keys').values(key).execute();
    this.keys.put(record, now);
    return key;
  }

  private async startSession(row: TunnelRow, key: TunnelKeyRow, target: PublishedPort): Promise<SshSession> {
    const edge = await this.sshEdge();
    const knownHosts = join(this.d.settings.stateDir, 'edge.known_hosts');
    await writeFile(knownHosts, edge.knownHostsLine(), { mode: 0o644 });
    const privateKeyPath = this.keyPath(key.key_id);
    const session = new ReverseTunnel({
      edgeHost: '127.0.0.1',
      edgePort: edge.port,
      user: this.d.settings.sshUser,
      identityPath: privateKeyPath,
      knownHostsPath: knownHosts,
      forward: { remotePort: key.listen_port, targetHost: target.hostIp === '0.0.0.0' ? '127.0.0.1' : target.hostIp, targetPort: target.hostPort },
      serverAliveIntervalSec: 5,
      serverAliveCountMax: 3,
      onState: (s) => {
        if (s.pid) void recordProcess(this.d.settings.stateDir, key.key_id, s.pid);
      },
    });
    session.start();
    this.d.log.info({ tunnelId: row.id, fingerprint: key.fingerprint, listenPort: key.listen_port }, 'ssh session starting');
    return { key, privateKeyPath, session };
  }

  private async endSession(s: SshSession): Promise<void> {
    await s.session.stop();
    await forgetProcess(this.d.settings.stateDir, s.key.key_id);
  }

  private sshEdge(): Promise<SshEdge> {
    this.edge ??= (async () => {
      const { settings } = this.d;
      const edge = await startSshEdge({
        dir: join(settings.stateDir, 'edge'),
        listenAddress: '127.0.0.1',
        port: settings.sshPort,
        tunnelUser: settings.sshUser,
        commandUser: settings.keysUser,
        keys: this.keys,
        clientAliveIntervalSec: 5,
        clientAliveCountMax: 3,
      });
      await recordProcess(settings.stateDir, 'sshd', edge.pid);
      return edge;
    })();
    this.edge.catch(() => (this.edge = undefined));
    return this.edge;
  }

  /**
   * New keys for the keyed paths, with overlap: the new session comes up and takes new
   * connections, the old one carries its open connections until they end or the overlap does.
   */
  private rotateLive(t: LiveTunnel, reason: string): Promise<string[]> {
    const run = async (): Promise<string[]> => {
      if (t.rotating) await t.rotating.catch(() => undefined);
      const now = new Date();
      const rotated: TunnelPathKind[] = [];
      if (t.ssh) {
        const old = t.ssh;
        const key = await this.newKey(t.row, now, old.key);
        const next = await this.startSession(t.row, key, t.target);
        try {
          await next.session.waitFor('up', UP_TIMEOUT_MS);
        } catch (err) {
          await this.endSession(next);
          await this.revokeKey(key, new Date());
          throw new OrderFailure(`the new ssh session did not come up: ${(err as Error).message}`);
        }
        t.ssh = next;
        t.forwarder.setTarget('ssh', sshTarget(key.listen_port));
        const overlapEnd = new Date(Math.min(old.key.valid_until.getTime(), now.getTime() + this.d.settings.keyOverlapMs));
        await this.d.db
          .updateTable('tunnel_keys')
          .set({ valid_until: overlapEnd })
          .where('tenant_id', '=', old.key.tenant_id)
          .where('tunnel_id', '=', old.key.tunnel_id)
          .where('key_id', '=', old.key.key_id)
          .execute();
        this.keys.put({ ...toRecord(old.key), validUntil: overlapEnd }, now);
        void this.retire(old, overlapEnd);
        rotated.push('ssh');
      }
      const [updated] = await this.d.db
        .updateTable('tunnels')
        .set({ rotated_at: now })
        .where('tenant_id', '=', t.row.tenant_id)
        .where('id', '=', t.row.id)
        .returningAll()
        .execute();
      if (updated) t.row = updated;
      await this.emit('tunnel.evt.rotated', t.row, { paths: rotated, reason });
      this.d.log.info({ tunnelId: t.row.id, paths: rotated, reason }, 'keys rotated');
      return rotated;
    };
    const done = run();
    t.rotating = done.then(() => undefined);
    return done;
  }

  /** The old session ends once no connection is open over its port (or at the overlap's end); then its key is revoked. */
  private async retire(old: SshSession, deadline: Date): Promise<void> {
    try {
      const edge = await this.sshEdge();
      const drained = (async () => {
        while (Date.now() < deadline.getTime() && !this.stopped) {
          if ((await edge.openConnections(old.key.listen_port)) === 0) return;
          await new Promise((r) => setTimeout(r, 500));
        }
      })();
      await old.session.retire(drained, deadline);
      await forgetProcess(this.d.settings.stateDir, old.key.key_id);
      if (!this.stopped) await this.revokeKey(old.key, new Date());
    } catch (err) {
      this.d.log.warn({ fingerprint: old.key.fingerprint, err: (err as Error).message }, 'could not retire an ssh session');
    }
  }

  private async revokeKey(k: TunnelKeyRow, at: Date): Promise<void> {
    this.keys.revoke(k.public_key, at);
    await this.d.db
      .updateTable('tunnel_keys')
      .set({ revoked_at: at })
      .where('tenant_id', '=', k.tenant_id)
      .where('tunnel_id', '=', k.tunnel_id)
      .where('key_id', '=', k.key_id)
      .execute();
    await removeClientKey({ privateKeyPath: this.keyPath(k.key_id) });
  }

  private async retarget(t: LiveTunnel, port: PublishedPort): Promise<void> {
    if (port.hostPort === t.target.hostPort && port.hostIp === t.target.hostIp) return;
    this.d.log.info({ tunnelId: t.row.id, from: t.target.hostPort, to: port.hostPort }, "the node's port moved: tunnel aimed again");
    t.target = port;
    for (const p of t.row.spec.paths) if (p.kind === 'direct') t.forwarder.setTarget('direct', { host: p.address!, port: port.hostPort });
    if (t.ssh) {
      // The forward's target is fixed per session: a new session with the same key.
      await this.endSession(t.ssh);
      t.ssh = await this.startSession(t.row, t.ssh.key, port);
    }
  }

  private async nodePort(tenantId: string, spec: TunnelSpec): Promise<PublishedPort> {
    const node = (await this.d.nodes(tenantId)).find((n) => n.nodeId === spec.nodeId && n.status !== 'removed');
    if (!node) throw new OrderFailure(`unknown node ${spec.nodeId}`);
    const port = publishedPort(node.ports, spec.port);
    if (typeof port === 'string') throw new OrderFailure(`port ${spec.port}: ${port}`);
    return port;
  }

  /** A free port of the range, taken by inserting the row: the unique index settles a race. */
  private async insert(p: Payload<'tunnel.cmd.open'>): Promise<void> {
    const [min, max] = this.d.settings.portRange;
    for (let attempt = 0; attempt < 20; attempt++) {
      const taken = await this.d.db.selectFrom('tunnels').select('public_port').execute();
      const port = lowestFreePort(min, max, new Set(taken.map((r) => r.public_port)));
      if (port === undefined) throw new OrderFailure(`no free tunnel port left in ${min}-${max}`);
      const inserted = await this.d.db
        .insertInto('tunnels')
        .values({ tenant_id: p.tenantId, id: p.tunnelId, name: p.spec.name, node_id: p.spec.nodeId, spec: JSON.stringify(p.spec) as unknown as TunnelSpec, public_port: port })
        .onConflict((oc) => oc.doNothing())
        .returning('id')
        .executeTakeFirst();
      if (inserted) return;
      if (await this.row(p.tenantId, p.tunnelId)) return;
    }
    throw new Error('could not take a tunnel port in 20 attempts');
  }

  private row(tenantId: string, tunnelId: string): Promise<TunnelRow | undefined> {
    return this.d.db.selectFrom('tunnels').selectAll().where('tenant_id', '=', tenantId).where('id', '=', tunnelId).executeTakeFirst();
  }

  private endpoint(row: TunnelRow) {
    return { host: this.d.settings.publicHost, port: row.public_port };
  }

  private keyPath(keyId: string): string {
    return join(this.d.settings.stateDir, 'keys', keyId);
  }

  private async onForwarderEvent(t: LiveTunnel, e: ForwarderEvent): Promise<void> {
    try {
      if (e.type === 'switch') {
        await this.emit('tunnel.evt.failover', t.row, { from: e.from ?? null, to: e.to ?? null, reason: e.reason });
        return;
      }
      const up = e.type === 'path-up';
      const reason = up ? (e.latencyMs !== undefined ? `probe answered in ${e.latencyMs.toFixed(1)} ms` : 'probe answered') : e.reason;
      t.paths.set(e.kind, { state: up ? 'up' : 'down', latencyMs: up ? (e.latencyMs ?? null) : null, reason: up ? null : e.reason, changedAt: new Date() });
      await this.savePath(t, e.kind);
      await this.emit(up ? 'tunnel.evt.up' : 'tunnel.evt.down', t.row, { path: e.kind, reason });
    } catch (err) {
      this.d.log.warn({ tunnelId: t.row.id, event: e.type, err: (err as Error).message }, 'could not record a path change');
    }
  }

  private async savePath(t: LiveTunnel, kind: TunnelPathKind): Promise<void> {
    const s = t.paths.get(kind)!;
    const values = { state: s.state, latency_ms: s.latencyMs, reason: s.reason, changed_at: s.changedAt };
    await this.d.db
      .insertInto('tunnel_paths')
      .values({ tenant_id: t.row.tenant_id, tunnel_id: t.row.id, kind, ...values })
      .onConflict((oc) => oc.columns(['tenant_id', 'tunnel_id', 'kind']).doUpdateSet(values))
      .execute();
  }

  private emit<S extends 'tunnel.evt.opened' | 'tunnel.evt.closed'>(
    subject: S,
    row: TunnelRow,
    extra: { endpoint: { host: string; port: number } | null; reason?: string },
  ): Promise<void>;
  private emit<S extends 'tunnel.evt.up' | 'tunnel.evt.down'>(subject: S, row: TunnelRow, extra: { path: TunnelPathKind; reason: string }): Promise<void>;
  private emit(subject: 'tunnel.evt.failover', row: TunnelRow, extra: { from: TunnelPathKind | null; to: TunnelPathKind | null; reason: string }): Promise<void>;
  private emit<S extends 'tunnel.evt.rotated' | 'tunnel.evt.expired'>(subject: S, row: TunnelRow, extra: { paths: TunnelPathKind[]; reason: string }): Promise<void>;
  private emit(subject: Parameters<Publish>[0], row: TunnelRow, extra: object): Promise<void> {
    const facts = { tenantId: row.tenant_id, tunnelId: row.id, nodeId: row.node_id, name: row.name, at: new Date().toISOString() };
    return this.d.publish(subject, { ...facts, ...extra } as never);
  }
}

function toRecord(k: TunnelKeyRow): SshKeyRecord {
  return { publicKey: k.public_key, pathId: `${k.tunnel_id}.ssh`, permitListenPort: k.listen_port, validFrom: k.created_at, validUntil: k.valid_until, revokedAt: k.revoked_at };
}

function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}
