import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Payload, ReplyOf } from '@switchyard/contracts';
import { Rejection } from '@switchyard/bus';
import { sql, type Kysely } from '@switchyard/db';
import { OrderFailure } from '@switchyard/service-kit';
import { knownHostsLine, linkAddress, pollUntil, probe, type SshEdge, type Target, type WireGuardLink, type WireGuardPeer } from '@switchyard/tunnels';
import { bringUpOwnLink, currentKeyFile, takeDownOwnLink } from './own-link.js';
import { sameTargets } from './plan.js';
import type { EdgeSshAddress, NodeSide, SessionHandle, SessionKey, SessionRoute } from './ssh-paths.js';
import type { Database, TunnelHostRow } from './tables.js';

export interface EdgeHostSettings {
  /** The node host whose agent serves this Docker host's nodes (TUNNEL_HOST_ID). */
  hostId: string;
  stateDir: string;
  wgRange: string;
  wgPort: number;
  /** host:port node hosts reach the edge's WireGuard at. */
  wgEndpoint: string;
  /** The host pair's WireGuard key is rotated this often (its own schedule, not a tenant's). */
  wgRotateMs: number;
  /** The address node hosts dial the edge's sshd at (its pinned host key is named for it). */
  sshPublicHost: string;
  sshUser: string;
}

export interface EdgeHostDeps {
  db: Kysely<Database>;
  log: { info(o: object, msg: string): void; warn(o: object, msg: string): void };
  settings: EdgeHostSettings;
  /** Tells the host's agent to ask for its plan now (tunnel.evt.replanned; it also asks on a timer). */
  notify(hostId: string): Promise<void>;
  sshEdge(): Promise<SshEdge>;
  /** The host no longer holds the private half of a key a session needs (its state was lost): the tunnel needs a new one. */
  lostKey(keyId: string): void;
  /** The host pair's WireGuard key rotated: every tunnel over the link says so. */
  linkRotated(): void;
}

/** A key the edge asked the host for: its public half once the agent reported it. */
interface PendingKey {
  hostId: string;
  askedAt: number;
  publicKey?: string;
  resolve(publicKey: string): void;
}

/** How long an agent has to make a key and report its public half. */
const KEY_WAIT_MS = 30_000;
/** A reported pending key is kept (and so not deleted by the agent) this long: its row is written meanwhile. */
const PENDING_KEEP_MS = 60_000;
const HANDSHAKE_WAIT_MS = 30_000;
const UP_POLL_MS = 200;
/** A link that would not come up is tried again at a plan request this long after. */
const LINK_RETRY_MS = 30_000;

/**
 * The edge role's side of its node hosts (TUNNEL_ROLE=edge): the edge's WireGuard link end with
 * a peer per host, and, as the ssh paths' NodeSide, the keys and sessions it asks each host's
 * agent for. An agent pulls its plan (`tunnel.req.plan`) and hands over public halves there;
 * private halves never leave the host. What a host runs is derived from the tunnels live here,
 * so an edge restart rebuilds it from the tables like the rest.
 */
export class EdgeHosts implements NodeSide {
  private link: WireGuardLink | undefined;
  private readonly pending = new Map<string, PendingKey>();
  private readonly sessions = new Map<string, { forwardPort: number; targets: readonly Target[]; balanced: boolean }>();
  private readonly listeners = new Map<number, readonly Target[]>();
  /** The ssh keys each agent said it holds at its last request; none yet after a start. */
  private readonly reported = new Map<string, ReadonlySet<string>>();
  private rotation: Promise<void> | undefined;
  private readonly epoch = randomUUID();
  private linkTriedAt = 0;
  /** Plan requests are answered one at a time: each reads and may change the host's row and the link. */
  private planning: Promise<unknown> = Promise.resolve();

  constructor(private readonly d: EdgeHostDeps) {}

  /**
   * The host's row (its link address), then the edge's link end with the host as its peer. A
   * link that fails (its port taken, no wireguard-go) leaves the other paths running: the
   * WireGuard paths are down, and it is tried again later.
   */
  async start(): Promise<void> {
    await this.host();
    await this.ensureLink();
  }

  /** Tells the host's agent to ask for its plan now: once the plan's responder runs, the new epoch reaches it at once. */
  announce(): void {
    this.changed();
  }

  async stop(): Promise<void> {
    await this.rotation;
    if (this.link) await takeDownOwnLink(this.link, this.d.settings.stateDir, 'edge');
  }

  private async ensureLink(): Promise<void> {
    if (this.link) return;
    const { settings } = this.d;
    this.linkTriedAt = Date.now();
    try {
      const key = await currentKeyFile(settings.stateDir, 'edge');
      this.link = await bringUpOwnLink({
        stateDir: settings.stateDir,
        label: 'edge',
        key,
        range: settings.wgRange,
        address: linkAddress(settings.wgRange, 1),
        listenPort: settings.wgPort,
      });
    } catch (err) {
      this.d.log.warn({ err: (err as Error).message }, `the edge's WireGuard did not come up: WireGuard paths stay down, tried again in ${LINK_RETRY_MS / 1000} s`);
      return;
    }
    const host = await this.host();
    if (host.wireguard_public_key) await this.link.setPeer(this.peerOf(host, host.wireguard_public_key));
    // A rotation the last run left half done: the new key accepted again, its handshake awaited again.
    if (host.wireguard_public_key && host.wireguard_next_key) {
      await this.link.acceptPeerKey(host.wireguard_next_key);
      this.watchRotation(host, host.wireguard_public_key, host.wireguard_next_key);
    }
    this.d.log.info({ interface: this.link.name, mode: this.link.mode, address: this.link.address, port: settings.wgPort }, 'edge WireGuard up');
  }

  /** Where the edge dials a tunnel's WireGuard path: the host's link address, on the tunnel's port. */
  async wireguardTarget(port: number): Promise<Target> {
    return { host: linkAddress(this.d.settings.wgRange, (await this.host()).link_index), port };
  }

  /** The host listens on its link address at `port` and splices to `targets` (the node's published port, or a pool's). */
  setListener(port: number, targets: readonly Target[]): void {
    const was = this.listeners.get(port);
    if (was && sameTargets(was, targets)) return;
    this.listeners.set(port, targets);
    this.changed();
  }

  removeListener(port: number): void {
    if (this.listeners.delete(port)) this.changed();
  }

  /**
   * Asks the host for a new WireGuard key once its key is older than TUNNEL_WG_ROTATE_HOURS;
   * the switch is made with overlap (see `plan`). The key is the host pair's, rotated on its own
   * schedule: no tenant's request rotates it, as every tenant's traffic over the link would pause.
   */
  async rotateIfDue(now: Date): Promise<void> {
    const host = await this.host();
    if (!this.link || !host.wireguard_public_key || host.rotate_wanted_at || now.getTime() - (host.wireguard_rotated_at ?? now).getTime() < this.d.settings.wgRotateMs) return;
    await this.d.db.updateTable('tunnel_hosts').set({ rotate_wanted_at: now }).where('host_id', '=', host.host_id).where('rotate_wanted_at', 'is', null).execute();
    this.d.log.info({ hostId: host.host_id }, "the node host's WireGuard key is due: asked for a new one");
    this.changed();
  }

  // ---- the agent's request ----

  plan(req: Payload<'tunnel.req.plan'>): Promise<ReplyOf<'tunnel.req.plan'>> {
    // One Docker host today: the agent of another host has nothing here (and gets no peer).
    if (req.hostId !== this.d.settings.hostId) return Promise.reject(new Rejection(`unknown node host ${req.hostId}: this edge serves ${this.d.settings.hostId} (TUNNEL_HOST_ID)`));
    const answer = this.planning.then(() => this.answer(req));
    this.planning = answer.catch(() => undefined);
    return answer;
  }

  private async answer(req: Payload<'tunnel.req.plan'>): Promise<ReplyOf<'tunnel.req.plan'>> {
    const { settings, db } = this.d;
    if (!this.link && Date.now() - this.linkTriedAt > LINK_RETRY_MS) await this.ensureLink();
    for (const k of req.sshKeys) {
      const p = this.pending.get(k.keyId);
      if (p && p.hostId === req.hostId && p.publicKey === undefined) {
        p.publicKey = k.publicKey;
        p.resolve(k.publicKey);
      }
    }
    const held = new Set(req.sshKeys.map((k) => k.keyId));
    this.reported.set(req.hostId, held);
    for (const keyId of this.sessions.keys()) if (!held.has(keyId)) this.d.lostKey(keyId);
    let host = await this.host();
    if (req.wireguardPublicKey && req.wireguardPublicKey !== host.wireguard_public_key && req.wireguardPublicKey !== host.wireguard_next_key)
      host = await this.takeWireguardKey(host, req.wireguardPublicKey);
    await db.updateTable('tunnel_hosts').set({ seen_at: new Date() }).where('host_id', '=', host.host_id).execute();

    const now = Date.now();
    for (const [keyId, p] of this.pending) if (p.publicKey !== undefined && now - p.askedAt > PENDING_KEEP_MS) this.pending.delete(keyId);
    const live = await db.selectFrom('tunnel_keys').select('key_id').where('revoked_at', 'is', null).execute();
    const mine = [...this.pending].filter(([, p]) => p.hostId === req.hostId);
    const edge = await this.d.sshEdge();
    const link = this.link;
    return {
      hostId: req.hostId,
      edgeEpoch: this.epoch,
      wireguard: link
        ? {
            edgePublicKey: link.key.publicKey,
            edgeEndpoint: settings.wgEndpoint,
            edgeAddress: link.address,
            hostAddress: linkAddress(settings.wgRange, host.link_index),
            range: settings.wgRange,
            hostPublicKey: host.wireguard_next_key ?? host.wireguard_public_key,
            rotating: host.wireguard_next_key !== null,
          }
        : null,
      listeners: [...this.listeners].map(([port, targets]) => ({ port, targets: [...targets] })),
      edgeSsh: {
        host: settings.sshPublicHost,
        port: edge.port,
        user: settings.sshUser,
        knownHostsLine: knownHostsLine(settings.sshPublicHost, edge.port, edge.hostPublicKey).trimEnd(),
      },
      sessions: [...this.sessions].map(([keyId, s]) => ({ keyId, forwardPort: s.forwardPort, targets: [...s.targets], balanced: s.balanced })),
      wantKeys: mine.filter(([, p]) => p.publicKey === undefined).map(([keyId]) => keyId),
      keepKeys: [...new Set([...live.map((k) => k.key_id), ...mine.map(([keyId]) => keyId), ...this.sessions.keys()])],
      rotateWireguard: host.rotate_wanted_at !== null && host.wireguard_next_key === null,
    };
  }

  /**
   * A key the host has not used here before. Asked for (a rotation): accepted beside the old
   * one, which keeps the traffic until the new key's first handshake moves it over. Not asked
   * for (the host lost its key): it replaces the old one at once.
   */
  private async takeWireguardKey(host: TunnelHostRow, publicKey: string): Promise<TunnelHostRow> {
    const link = this.link;
    const old = host.wireguard_public_key;
    if (link && old && host.rotate_wanted_at) {
      await link.acceptPeerKey(publicKey);
      const [row] = await this.d.db.updateTable('tunnel_hosts').set({ wireguard_next_key: publicKey }).where('host_id', '=', host.host_id).returningAll().execute();
      this.watchRotation(row!, old, publicKey);
      return row!;
    }
    if (link) {
      if (old) await link.replacePeer(old, this.peerOf(host, publicKey));
      else await link.setPeer(this.peerOf(host, publicKey));
    }
    this.d.log.info({ hostId: host.host_id }, old ? 'a node host came back with a new WireGuard key: it replaces the old one' : 'a node host joined the WireGuard link');
    const [row] = await this.d.db
      .updateTable('tunnel_hosts')
      .set({ wireguard_public_key: publicKey, wireguard_next_key: null, wireguard_rotated_at: new Date() })
      .where('host_id', '=', host.host_id)
      .returningAll()
      .execute();
    return row!;
  }

  private watchRotation(host: TunnelHostRow, old: string, next: string): void {
    const rotation = this.completeRotation(host, old, next).finally(() => {
      if (this.rotation === rotation) this.rotation = undefined;
    });
    this.rotation = rotation;
  }

  /** Once the new key has handshaken (the host switched), it takes the old one's place in one `wg set`. */
  private async completeRotation(host: TunnelHostRow, old: string, next: string): Promise<void> {
    const link = this.link!;
    try {
      const seen = await pollUntil(
        () => link.peer(next),
        (p) => (p?.latestHandshakeAt ?? null) !== null,
        HANDSHAKE_WAIT_MS,
        50,
      );
      if (seen.met) {
        await link.replacePeer(old, this.peerOf(host, next));
        await this.d.db
          .updateTable('tunnel_hosts')
          .set({ wireguard_public_key: next, wireguard_next_key: null, rotate_wanted_at: null, wireguard_rotated_at: new Date() })
          .where('host_id', '=', host.host_id)
          .execute();
        this.d.log.info({ hostId: host.host_id }, "the node host's WireGuard key rotated");
        this.d.linkRotated();
        // The agent lets go of the old key once the plan says the rotation is over.
        this.changed();
        return;
      }
      // Never switched (or its handshake lost on a link that was down): the new key is dropped. An
      // agent that switched reports it at its next request and is taken with it as a host's new
      // key; one that did not carries on with the old. The next rotation asks again.
      await link.removePeer(next);
      await this.d.db.updateTable('tunnel_hosts').set({ wireguard_next_key: null, rotate_wanted_at: null }).where('host_id', '=', host.host_id).execute();
      this.d.log.warn({ hostId: host.host_id }, `the node host did not switch to its new WireGuard key within ${HANDSHAKE_WAIT_MS / 1000} s; it keeps the old one`);
    } catch (err) {
      this.d.log.warn({ hostId: host.host_id, err: (err as Error).message }, 'could not finish a WireGuard rotation');
    }
    this.changed();
  }

  // ---- NodeSide: the ssh paths' keys and sessions, on the host ----

  createKey(keyId: string): Promise<string> {
    const hostId = this.d.settings.hostId;
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(keyId);
        reject(new OrderFailure(`the agent of node host ${hostId} made no SSH key within ${KEY_WAIT_MS / 1000} s: is tunnel-manager running there with TUNNEL_ROLE=node?`));
      }, KEY_WAIT_MS);
      this.pending.set(keyId, {
        hostId,
        askedAt: Date.now(),
        resolve: (publicKey) => {
          clearTimeout(timer);
          resolve(publicKey);
        },
      });
      this.changed();
    });
  }

  /** The agent deletes the private half once no plan keeps the key. */
  async discardKey(keyId: string): Promise<void> {
    this.pending.delete(keyId);
    this.changed();
  }

  /** As far as the agent said at its last request; before any request after a start, assumed. */
  async holdsKey(keyId: string): Promise<boolean> {
    return this.reported.get(this.d.settings.hostId)?.has(keyId) ?? true;
  }

  async startSession(key: SessionKey, route: SessionRoute, _edge: EdgeSshAddress, _tunnelId: string): Promise<SessionHandle> {
    const forwardPort = key.listen_port;
    this.sessions.set(key.key_id, { forwardPort, targets: route.targets, balanced: route.balanced });
    this.changed();
    const stop = async () => {
      if (this.sessions.delete(key.key_id)) this.changed();
    };
    return {
      // Up when the edge's sshd listens on the forward port: the host's session is logged in.
      async waitFor(_status, timeoutMs) {
        const up = await pollUntil(
          () => probe({ host: '127.0.0.1', port: forwardPort }, 500),
          (r) => r.ok,
          timeoutMs,
          UP_POLL_MS,
        );
        if (!up.met) throw new Error(`no ssh session of the node host forwards port ${forwardPort} within ${timeoutMs} ms`);
      },
      stop,
      ...(route.balanced
        ? {
            setTargets: (targets: readonly Target[]) => {
              const s = this.sessions.get(key.key_id);
              if (!s || sameTargets(s.targets, targets)) return;
              s.targets = targets;
              this.changed();
            },
          }
        : {}),
      async retire(drained, deadline) {
        const overlap = new AbortController();
        try {
          await Promise.race([drained, sleep(Math.max(0, deadline.getTime() - Date.now()), undefined, { signal: overlap.signal }).catch(() => undefined)]);
        } finally {
          overlap.abort();
          await stop();
        }
      },
    };
  }

  // ---- the parts ----

  /** The host's row, made with the next free link address the first time. */
  private async host(): Promise<TunnelHostRow> {
    const { db, settings } = this.d;
    await sql`insert into tunnel_hosts (host_id, link_index)
      select ${settings.hostId}, coalesce(max(link_index), 1) + 1 from tunnel_hosts
      on conflict (host_id) do nothing`.execute(db);
    return db.selectFrom('tunnel_hosts').selectAll().where('host_id', '=', settings.hostId).executeTakeFirstOrThrow();
  }

  private peerOf(host: TunnelHostRow, publicKey: string): WireGuardPeer {
    // No endpoint: the host calls in (its keepalive keeps the edge knowing where it is).
    return { publicKey, allowedIps: [`${linkAddress(this.d.settings.wgRange, host.link_index)}/32`] };
  }

  private changed(): void {
    const hostId = this.d.settings.hostId;
    void this.d.notify(hostId).catch((err: Error) => this.d.log.warn({ hostId, err: err.message }, "could not tell the node host's agent; it asks again on its timer"));
  }
}
