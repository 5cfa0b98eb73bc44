import type { Payload, ReplyOf, TunnelPathKind, TunnelSpec } from '@switchyard/contracts';
import { sql, type Kysely, uniqueViolationOf } from '@switchyard/db';
import { OrderFailure } from '@switchyard/service-kit';
import { type Forwarder, rotateRecords, startForwarder } from '@switchyard/tunnels';
import type { EdgeHosts } from './edge-hosts.js';
import { forwarderPaths, lowestFreePort, nextRotation, type NodeRoute, nodeRoute, publishedPort, sameRoute, specProblems, sshTarget, withTunnelDefaults } from './plan.js';
import { type NodeSide, SshPaths, type SshPathSettings, type SshSession, toRecord } from './ssh-paths.js';
import { type Publish, TunnelRecorder } from './recorder.js';
import { type FleetView, resolveRoute, UnknownNode } from './route.js';
import type { Database, TunnelRow } from './tables.js';
import { type PathStatus, tunnelView } from './views.js';

export interface Log {
  info(o: object, msg: string): void;
  warn(o: object, msg: string): void;
}

export interface ManagerSettings extends SshPathSettings {
  edgeHost: string;
  publicHost: string;
  portRange: [number, number];
  directAddresses: ReadonlySet<string>;
  maxPerTenant: number;
  rotateMinIntervalMs: number;
}

export interface ManagerDeps {
  db: Kysely<Database>;
  publish: Publish;
  log: Log;
  settings: ManagerSettings;
  /** Where the ssh paths' keys and clients live: this host, or the node host's agent (edge role). */
  side: NodeSide;
  /** The edge role's node hosts: its WireGuard link end and their agents' plans. */
  hosts?: EdgeHosts;
  /** The tenant's pools and nodes as exit-node-manager holds them (pool.req.snapshot); `complete`: no row was left out. */
  fleet(tenantId: string): Promise<FleetView>;
}

/** A tunnel that runs here: its endpoint, and the SSH session of its ssh path. */
interface LiveTunnel {
  row: TunnelRow;
  forwarder: Forwarder;
  route: NodeRoute;
  ssh: SshSession | undefined;
  paths: Map<TunnelPathKind, PathStatus>;
  /** Path changes are stored and published in the order the forwarder saw them. */
  recording: Promise<void>;
  /** Sessions a rotation replaced that still carry open connections. */
  retiring: Set<SshSession>;
}

const UP_TIMEOUT_MS = 30_000;
/** Tries at taking a free endpoint port against concurrent opens. */
const ATTEMPTS = 20;

/**
 * Opens, rotates and closes tunnels on the edge: in single-host mode this host is the node's
 * host too; in the edge role the node host's agent runs the node's side (EdgeHosts). Rows
 * first, then the processes, so that a restart finds every tunnel in the tables and builds it
 * again (`restore`). Everything done to one tunnel (open, close, rotate,
 * aim, rebuild) runs one at a time (`exclusive`).
 */
export class TunnelManager {
  private readonly live = new Map<string, LiveTunnel>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly retiring = new Set<Promise<void>>();
  /** Keys a node host lost, being replaced now. */
  private readonly replacing = new Set<string>();
  private readonly ssh: SshPaths;
  private readonly events: TunnelRecorder;
  private stopped = false;

  constructor(private readonly d: ManagerDeps) {
    this.events = new TunnelRecorder(d.db, d.publish, d.log);
    this.ssh = new SshPaths({ db: d.db, side: d.side, log: d.log, settings: d.settings, stopped: () => this.stopped });
  }

  // ---- commands ----

  open(p: Payload<'tunnel.cmd.open'>): Promise<{ endpoint: { host: string; port: number } }> {
    return this.exclusive(p.tunnelId, async () => {
      const existing = await this.row(p.tenantId, p.tunnelId);
      if (!existing) await this.admit(p);
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
      // Also when redelivered after a crash that came before it: JetStream drops a repeat.
      await this.events.emit('tunnel.evt.opened', t.row, { endpoint });
      return { endpoint };
    });
  }

  close(p: Payload<'tunnel.cmd.close'>, reason = 'closed by its owner'): Promise<void> {
    return this.exclusive(p.tunnelId, async () => {
      // Gone already: a redelivery of a close that was carried out.
      const row = await this.row(p.tenantId, p.tunnelId);
      if (row) await this.closeRow(row, reason);
    });
  }

  /** Inside `exclusive`: the endpoint and sessions ended, told, then its keys and rows gone. */
  private async closeRow(row: TunnelRow, reason: string): Promise<void> {
    await this.stopLive(row.id, { dropConnections: true });
    await this.events.emit('tunnel.evt.closed', row, { endpoint: null, reason });
    await this.forget(row);
  }

  rotate(p: Payload<'tunnel.cmd.rotate'>, reason = 'asked for'): Promise<TunnelPathKind[]> {
    return this.exclusive(p.tunnelId, async () => {
      const row = await this.row(p.tenantId, p.tunnelId);
      if (!row) throw new OrderFailure(`unknown tunnel ${p.tunnelId}`);
      if (!hasSsh(row.spec))
        throw new OrderFailure(
          'no path of this tunnel has a key of its own to rotate: ssh paths do; a wireguard path uses the link of the node host, whose key the edge rotates on its own schedule (TUNNEL_WG_ROTATE_HOURS)',
        );
      const sinceMs = Date.now() - row.rotated_at.getTime();
      if (sinceMs < this.d.settings.rotateMinIntervalMs)
        throw new OrderFailure(`rotated ${Math.round(sinceMs / 1000)} s ago; at most one rotation every ${this.d.settings.rotateMinIntervalMs / 1000} s`);
      return this.rotateLive(await this.ensureLive(row), reason);
    });
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
        .where('superseded_at', 'is', null)
        .orderBy('created_at', 'desc')
        .execute(),
      this.d.db.selectFrom('tunnel_paths').selectAll().where('tenant_id', '=', p.tenantId).where('tunnel_id', 'in', ids).execute(),
    ]);
    return {
      tunnels: rows.map((row) => {
        const t = this.live.get(row.id);
        const status = t ? ('open' as const) : this.locks.has(row.id) ? ('opening' as const) : ('failed' as const);
        const running = t ? { current: t.forwarder.state().current, paths: t.paths, endpoint: this.endpoint(row) } : undefined;
        return tunnelView(
          row,
          status,
          running,
          keys.find((k) => k.tunnel_id === row.id),
          stored.filter((r) => r.tunnel_id === row.id),
        );
      }),
    };
  }

  /**
   * The node host no longer holds a session's private key (its state directory was lost): the
   * tunnel gets a new key, as at expiry. One replacement at a time per key.
   */
  replaceLostKey(keyId: string): void {
    const t = [...this.live.values()].find((x) => x.ssh?.key.key_id === keyId);
    if (!t || this.replacing.has(keyId)) return;
    this.replacing.add(keyId);
    void this.exclusive(t.row.id, async () => {
      if (this.live.get(t.row.id) === t && t.ssh?.key.key_id === keyId) await this.rotateLive(t, 'the node host lost its key');
    })
      .catch((err: Error) => this.d.log.warn({ tunnelId: t.row.id, err: err.message }, 'could not replace a key the node host lost; tried again at its next report'))
      .finally(() => this.replacing.delete(keyId));
  }

  /** The node host's link key rotated (its own schedule): each tunnel over it tells its owner. */
  async linkRotated(): Promise<void> {
    for (const t of [...this.live.values()])
      if (hasWireguard(t.row.spec))
        await this.events
          .emit('tunnel.evt.rotated', t.row, { paths: ['wireguard'], reason: "the node host's WireGuard key rotated (TUNNEL_WG_ROTATE_HOURS)" })
          .catch((err: Error) => this.d.log.warn({ tunnelId: t.row.id, err: err.message }, 'could not tell of the rotated link'));
  }

  /** The edge's sshd, started on first use. */
  sshEdge() {
    return this.ssh.edge();
  }

  // ---- node events ----

  /**
   * A node started: its host port may have changed, so each of its tunnels is aimed again, and
   * its pool's tunnels take it among their nodes.
   */
  async nodeStarted(p: Payload<'node.evt.started'>): Promise<void> {
    for (const t of [...this.live.values()]) {
      if (t.row.tenant_id !== p.tenantId) continue;
      let route: () => Promise<NodeRoute>;
      if (t.row.node_id === p.nodeId) {
        const port = publishedPort(p.ports, t.row.spec.port);
        if (typeof port === 'string') continue;
        route = async () => nodeRoute(port);
      } else if (t.row.pool_id === p.poolId) {
        await this.reaimPool(t);
        continue;
      } else continue;
      await this.aim(t, route);
    }
  }

  /** A node's tunnels close with it; its pool's tunnels stop sending to it. */
  async nodeRemoved(p: Payload<'node.evt.removed'>): Promise<void> {
    const rows = await this.d.db.selectFrom('tunnels').selectAll().where('tenant_id', '=', p.tenantId).where('node_id', '=', p.nodeId).execute();
    for (const row of rows) await this.close({ tenantId: row.tenant_id, tunnelId: row.id }, `its node was removed (${p.reason})`);
    for (const t of [...this.live.values()]) if (t.row.tenant_id === p.tenantId && t.row.pool_id === p.poolId) await this.reaimPool(t);
  }

  /**
   * A pool's tunnel aimed at the pool's nodes as the view has them now. When that view cannot be
   * had, it sends nowhere rather than to nodes that may be gone: a removed node's host port is
   * free for another node, another tenant's perhaps. A pool gone from a complete view closes it.
   */
  private reaimPool(t: LiveTunnel): Promise<void> {
    return this.exclusive(t.row.id, async () => {
      if (this.live.get(t.row.id) === t) await this.aimPoolNow(t);
    }).catch((err: Error) => this.d.log.warn({ tunnelId: t.row.id, err: err.message }, "the pool's nodes unknown: the tunnel sends nowhere until the next resync"));
  }

  /** Inside `exclusive`. */
  private async aimPoolNow(t: LiveTunnel): Promise<void> {
    let route: NodeRoute;
    try {
      route = await this.route(t.row.tenant_id, t.row.spec);
    } catch (err) {
      if (err instanceof UnknownNode && err.complete) return this.closeRow(t.row, 'its pool is gone');
      await this.retarget(t, { targets: [], hostPort: undefined, balanced: true });
      throw err;
    }
    await this.retarget(t, route);
  }

  private aim(t: LiveTunnel, route: () => Promise<NodeRoute>): Promise<void> {
    return this.exclusive(t.row.id, async () => {
      if (this.live.get(t.row.id) === t) await this.retarget(t, await route());
    }).catch((err: Error) => this.d.log.warn({ tunnelId: t.row.id, err: err.message }, 'could not aim the tunnel again; tried again at the next resync'));
  }

  // ---- start, resync, schedule, stop ----

  /**
   * Every stored tunnel running, aimed at where its node is now. One whose node is not in the
   * view stays in the table (a snapshot may leave a row out); node.evt.removed closes it.
   */
  async restore(): Promise<void> {
    const rows = await this.d.db.selectFrom('tunnels').select(['tenant_id', 'id']).execute();
    for (const { tenant_id, id } of rows) {
      if (this.stopped) return;
      await this.exclusive(id, async () => {
        // Read again in turn: closed (or a failed open undone) while this pass waited.
        const row = await this.row(tenant_id, id);
        if (!row) return;
        const running = this.live.get(id);
        try {
          if (running?.row.pool_id) await this.aimPoolNow(running);
          else if (running) await this.retarget(running, await this.route(row.tenant_id, row.spec));
          else await this.ensureLive(row);
        } catch (err) {
          // Gone from a complete view of the tenant's nodes: removed while this service was away.
          if (err instanceof UnknownNode && err.complete) return this.closeRow(row, row.pool_id ? 'its pool is gone' : 'its node is gone');
          throw err;
        }
      }).catch((err: Error) => this.d.log.warn({ tunnelId: id, err: err.message }, 'tunnel not built or aimed; tried again at the next resync'));
    }
  }

  /**
   * Takes expired keys out of the edge (and gives their tunnels new ones), ends superseded keys
   * whose overlap is over, and rotates what is due (weekly by default). Called one pass at a time.
   */
  async checkKeys(now = new Date()): Promise<void> {
    const over = await this.d.db.selectFrom('tunnel_keys').selectAll().where('revoked_at', 'is', null).where('valid_until', '<=', now).execute();
    for (const k of over) {
      await this.exclusive(k.tunnel_id, async () => {
        // A replaced key ends with its overlap, quietly.
        if (k.superseded_at) return this.ssh.revokeKey(k, new Date());
        const row = await this.row(k.tenant_id, k.tunnel_id);
        if (!row) return;
        await this.events.emit(
          'tunnel.evt.expired',
          row,
          { paths: ['ssh'], reason: `the ssh key ${k.fingerprint} expired at ${k.valid_until.toISOString()}` },
          `tunnel.evt.expired:${k.key_id}`,
        );
        const t = this.live.get(row.id);
        // The new key first: if that fails, this key is still here for the next pass to try again.
        if (t && t.ssh?.key.key_id === k.key_id) await this.rotateLive(t, 'its key expired');
        else await this.ssh.revokeKey(k, new Date());
      }).catch((err: Error) => this.d.log.warn({ tunnelId: k.tunnel_id, err: err.message }, 'could not replace an expired key; tried again at the next check'));
    }
    await this.d.hosts?.link
      .rotateIfDue(now)
      .catch((err: Error) => this.d.log.warn({ err: err.message }, "could not ask for the node host's new WireGuard key; tried again at the next check"));
    // The table says when each was rotated last: it is what survives a restart.
    const rows = await this.d.db.selectFrom('tunnels').selectAll().execute();
    for (const row of rows) {
      if (!hasSsh(row.spec) || nextRotation(row.rotated_at, row.spec) > now || !this.live.has(row.id)) continue;
      await this.exclusive(row.id, async () => {
        // Checked again in turn: a rotation asked for meanwhile may have made this one not due.
        const t = this.live.get(row.id);
        const fresh = await this.row(row.tenant_id, row.id);
        if (!t || !fresh || nextRotation(fresh.rotated_at, fresh.spec) > new Date()) return;
        t.row = fresh;
        await this.rotateLive(t, 'scheduled');
      }).catch((err: Error) => this.d.log.warn({ tunnelId: row.id, err: err.message }, 'rotation failed; tried again at the next check'));
    }
  }

  /** Ends the endpoints and sessions; rows and keys stay, so the next start builds them again. */
  async stop(): Promise<void> {
    this.stopped = true;
    // Work already under way finishes (new work is refused now); bounded by its own timeouts.
    for (let i = 0; i < 100 && this.locks.size + this.retiring.size > 0; i++) await Promise.allSettled([...this.locks.values(), ...this.retiring]);
    for (const id of [...this.live.keys()])
      await this.stopLive(id, { dropConnections: false }).catch((err: Error) => this.d.log.warn({ tunnelId: id, err: err.message }, 'could not stop a tunnel cleanly'));
    await this.ssh.stop();
  }

  // ---- the parts ----

  private exclusive<T>(tunnelId: string, work: () => Promise<T>): Promise<T> {
    const run = (this.locks.get(tunnelId) ?? Promise.resolve()).then(() => {
      if (this.stopped) throw new Error('tunnel-manager is stopping');
      return work();
    });
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.locks.set(tunnelId, tail);
    void tail.then(() => {
      if (this.locks.get(tunnelId) === tail) this.locks.delete(tunnelId);
    });
    return run;
  }

  /** The checks of a new tunnel, then its row: a node of the tenant's that publishes the port, a path that can run, room left. */
  private async admit(p: Payload<'tunnel.cmd.open'>): Promise<void> {
    const { settings } = this.d;
    const problems = specProblems(p.spec, settings.directAddresses);
    if (problems.length) throw new OrderFailure(problems.join('; '));
    const route = await this.route(p.tenantId, p.spec);
    // Only which paths can run matters here, not where they lead.
    const { paths, unavailable } = forwarderPaths(p.spec, route.hostPort, 0, settings.directAddresses, this.d.hosts ? { host: 'the node host', port: 1 } : undefined);
    if (paths.length === 0) throw new OrderFailure(`no path of this tunnel can run here: ${unavailable.map((u) => `${u.kind}: ${u.reason}`).join('; ')}`);
    await this.insert(p);
  }

  private async ensureLive(row: TunnelRow): Promise<LiveTunnel> {
    const running = this.live.get(row.id);
    if (running) return running;
    if (this.stopped) throw new Error('tunnel-manager is stopping');
    const route = await this.route(row.tenant_id, row.spec);
    const spec = withTunnelDefaults(row.spec);
    const wireguard = this.d.hosts && hasWireguard(spec) ? await this.d.hosts.link.wireguardTarget(row.public_port) : undefined;
    const ssh = hasSsh(spec) ? await this.ssh.session(row, route) : undefined;
    const { paths, unavailable } = forwarderPaths(spec, route.hostPort, ssh?.key.listen_port, this.d.settings.directAddresses, wireguard);
    const stopSsh = async () => {
      if (ssh) await this.ssh.endSession(ssh);
    };
    if (paths.length === 0) {
      await stopSsh();
      throw new OrderFailure(`no path of this tunnel can run here: ${unavailable.map((u) => `${u.kind}: ${u.reason}`).join('; ')}`);
    }
    const statuses = new Map<TunnelPathKind, PathStatus>(spec.paths.map((p) => [p.kind, { state: 'unknown', latencyMs: null, reason: null, changedAt: null }]));
    for (const u of unavailable) statuses.set(u.kind, { state: 'down', latencyMs: null, reason: u.reason, changedAt: new Date() });
    const t: LiveTunnel = { row, route, ssh, paths: statuses, recording: Promise.resolve(), retiring: new Set(), forwarder: undefined as unknown as Forwarder };
    try {
      t.forwarder = await startForwarder({
        host: this.d.settings.edgeHost,
        port: row.public_port,
        paths,
        intervalMs: spec.probeIntervalMs,
        fall: spec.fall,
        holdDownMs: spec.holdDownMs,
        onEvent: (e) => {
          t.recording = t.recording.then(() => this.events.record(t.row, t.paths, e));
        },
      });
    } catch (err) {
      await stopSsh();
      if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE')
        throw new OrderFailure(`the endpoint's port ${row.public_port} on ${this.d.settings.edgeHost} is taken by another program`);
      throw err;
    }
    try {
      for (const u of unavailable) await this.events.savePath(t.row, u.kind, statuses.get(u.kind)!);
    } catch (err) {
      await t.forwarder.stop({ dropConnections: true });
      await stopSsh();
      throw err;
    }
    this.live.set(row.id, t);
    if (wireguard) this.d.hosts!.setListener(row.public_port, route.targets);
    this.d.log.info({ tunnelId: row.id, endpoint: this.endpoint(row), paths: spec.paths.map((p) => p.kind) }, 'tunnel running');
    return t;
  }

  private async stopLive(id: string, opts: { dropConnections: boolean }): Promise<void> {
    const t = this.live.get(id);
    if (!t) return;
    this.live.delete(id);
    this.d.hosts?.removeListener(t.row.public_port);
    await t.forwarder.stop(opts);
    for (const s of [t.ssh, ...t.retiring]) if (s) await this.ssh.endSession(s);
    await t.recording;
  }

  /**
   * A new key for the ssh path, with overlap: the new session comes up and takes new
   * connections, the old one carries its open connections until they end or the overlap does.
   * Runs inside `exclusive`.
   */
  private async rotateLive(t: LiveTunnel, reason: string): Promise<TunnelPathKind[]> {
    const now = new Date();
    const rotated: TunnelPathKind[] = [];
    if (t.ssh) {
      const old = t.ssh;
      const key = await this.ssh.newKey(t.row, now, old.key);
      const { retiring } = rotateRecords(
        toRecord(old.key),
        { publicKey: key.public_key, permitListenPort: key.listen_port },
        { now, overlapMs: this.d.settings.keyOverlapMs, lifetimeMs: 0 },
      );
      let next: SshSession | undefined;
      try {
        next = await this.ssh.startSession(t.row, key, t.route);
        await next.session.waitFor('up', UP_TIMEOUT_MS);
        // Written before the switch: a crash after it finds the old key ending with its overlap.
        await this.d.db
          .updateTable('tunnel_keys')
          .set({ valid_until: retiring.validUntil, superseded_at: now })
          .where('tenant_id', '=', old.key.tenant_id)
          .where('tunnel_id', '=', old.key.tunnel_id)
          .where('key_id', '=', old.key.key_id)
          .execute();
      } catch (err) {
        if (next) await this.ssh.endSession(next).catch(() => undefined);
        await this.ssh.revokeKey(key, new Date());
        throw new OrderFailure(`the new ssh session did not come up: ${(err as Error).message}`);
      }
      t.ssh = next;
      t.forwarder.setTarget('ssh', sshTarget(key.listen_port));
      this.ssh.put(retiring, now);
      t.retiring.add(old);
      const retire = this.ssh.retire(old, retiring.validUntil).finally(() => t.retiring.delete(old));
      this.retiring.add(retire);
      void retire.finally(() => this.retiring.delete(retire));
      rotated.push('ssh');
    }
    const [updated] = await this.d.db.updateTable('tunnels').set({ rotated_at: now }).where('tenant_id', '=', t.row.tenant_id).where('id', '=', t.row.id).returningAll().execute();
    if (updated) t.row = updated;
    await this.events.emit('tunnel.evt.rotated', t.row, { paths: rotated, reason });
    this.d.log.info({ tunnelId: t.row.id, paths: rotated, reason }, 'keys rotated');
    return rotated;
  }

  /** Its keys out of the edge and off the disk, then its rows. */
  private async forget(row: TunnelRow): Promise<void> {
    // Their sessions cut before the rows (and the ports they hold) go.
    await this.ssh.forget(await this.d.db.selectFrom('tunnel_keys').selectAll().where('tenant_id', '=', row.tenant_id).where('tunnel_id', '=', row.id).execute());
    await this.d.db.deleteFrom('tunnels').where('tenant_id', '=', row.tenant_id).where('id', '=', row.id).execute();
  }

  private async retarget(t: LiveTunnel, route: NodeRoute): Promise<void> {
    if (sameRoute(route, t.route)) return;
    this.d.log.info({ tunnelId: t.row.id, from: t.route.targets, to: route.targets }, 'the node side moved: tunnel aimed again');
    t.route = route;
    if (this.d.hosts && hasWireguard(t.row.spec)) this.d.hosts.setListener(t.row.public_port, route.targets);
    for (const p of t.row.spec.paths)
      if (p.kind === 'direct' && route.hostPort !== undefined && this.d.settings.directAddresses.has(p.address!))
        t.forwarder.setTarget('direct', { host: p.address!, port: route.hostPort });
    if (!t.ssh) return;
    // A pool's session splices to its nodes on the node's side: they change under it. A node's
    // forward is fixed per session: a new session with the same key.
    if (t.ssh.session.setTargets) t.ssh.session.setTargets(route.targets);
    else {
      await this.ssh.endSession(t.ssh);
      t.ssh = await this.ssh.startSession(t.row, t.ssh.key, route);
    }
  }

  /**
   * A free port of the range, taken by inserting the row: the unique index settles a race. The
   * tenant's count and the insert hold the tenant's advisory lock, so concurrent opens cannot
   * pass TUNNEL_MAX_PER_TENANT together.
   */
  private async insert(p: Payload<'tunnel.cmd.open'>): Promise<void> {
    const [min, max] = this.d.settings.portRange;
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      try {
        const done = await this.d.db.transaction().execute(async (tx) => {
          await sql`select pg_advisory_xact_lock(hashtext(${p.tenantId}))`.execute(tx);
          const held = await tx.selectFrom('tunnels').select(sql<number>`count(*)::int`.as('n')).where('tenant_id', '=', p.tenantId).executeTakeFirstOrThrow();
          if (held.n >= this.d.settings.maxPerTenant) throw new OrderFailure(`the tenant holds ${held.n} tunnels, the most allowed (TUNNEL_MAX_PER_TENANT)`);
          const taken = await tx.selectFrom('tunnels').select('public_port').execute();
          const port = lowestFreePort(min, max, new Set(taken.map((r) => r.public_port)));
          if (port === undefined) throw new OrderFailure(`no free tunnel port left in ${min}-${max}`);
          await tx
            .insertInto('tunnels')
            .values({
              tenant_id: p.tenantId,
              id: p.tunnelId,
              name: p.spec.name,
              node_id: p.spec.nodeId ?? null,
              pool_id: p.spec.poolId ?? null,
              spec: JSON.stringify(p.spec) as unknown as TunnelSpec,
              public_port: port,
            })
            .execute();
          return true;
        });
        if (done) return;
      } catch (err) {
        const constraint = uniqueViolationOf(err);
        if (constraint === undefined) throw err;
        if (constraint === 'tunnels_name') throw new OrderFailure(`a tunnel named ${p.spec.name} exists already`);
        if (constraint === 'tunnels_pk') return;
      }
    }
    throw new Error(`could not take a tunnel port in ${ATTEMPTS} attempts`);
  }

  private row(tenantId: string, tunnelId: string): Promise<TunnelRow | undefined> {
    return this.d.db.selectFrom('tunnels').selectAll().where('tenant_id', '=', tenantId).where('id', '=', tunnelId).executeTakeFirst();
  }

  private endpoint(row: TunnelRow) {
    return { host: this.d.settings.publicHost, port: row.public_port };
  }

  /** Where the node side dials, from exit-node-manager's view of the tenant now. */
  private async route(tenantId: string, spec: TunnelSpec): Promise<NodeRoute> {
    return resolveRoute(await this.d.fleet(tenantId), spec);
  }
}

const hasSsh = (spec: TunnelSpec) => spec.paths.some((p) => p.kind === 'ssh');
const hasWireguard = (spec: TunnelSpec) => spec.paths.some((p) => p.kind === 'wireguard');
