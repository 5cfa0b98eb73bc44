import type { ReplyOf } from '@switchyard/contracts';
import { sql, type Kysely } from '@switchyard/db';
import { linkAddress, pollUntil, type Target, type WireGuardLink, type WireGuardPeer } from '@switchyard/tunnels';
import { bringUpOwnLink, currentKeyFile, takeDownOwnLink } from './own-link.js';
import type { Database, TunnelHostRow } from './tables.js';

export interface EdgeLinkSettings {
  /** The node host whose agent serves this Docker host's nodes (TUNNEL_HOST_ID). */
  hostId: string;
  stateDir: string;
  wgRange: string;
  wgPort: number;
  /** host:port node hosts reach the edge's WireGuard at. */
  wgEndpoint: string;
  /** The host pair's WireGuard key is rotated this often (its own schedule, not a tenant's). */
  wgRotateMs: number;
}

export interface EdgeLinkDeps {
  db: Kysely<Database>;
  log: { info(o: object, msg: string): void; warn(o: object, msg: string): void };
  settings: EdgeLinkSettings;
  /** The host's agent should ask for its plan now. */
  changed(): void;
  /** The host pair's WireGuard key rotated: every tunnel over the link says so. */
  linkRotated(): void;
}

const HANDSHAKE_WAIT_MS = 30_000;
/** A link that would not come up is tried again at a plan request this long after. */
const LINK_RETRY_MS = 30_000;

/**
 * The edge's end of its WireGuard link to the node host: the host's row (link address, public
 * key, a rotation under way), the host as the link's one peer, and the key's own rotation
 * schedule with overlap. A link that fails to come up (its port taken, no wireguard-go) leaves
 * the other paths running and is tried again at a later plan request.
 */
export class EdgeLink {
  private link: WireGuardLink | undefined;
  private rotation: Promise<void> | undefined;
  private linkTriedAt = 0;

  constructor(private readonly d: EdgeLinkDeps) {}

  async start(): Promise<void> {
    await this.host();
    await this.ensureLink();
  }

  async stop(): Promise<void> {
    await this.rotation;
    if (this.link) await takeDownOwnLink(this.link, this.d.settings.stateDir, 'edge');
  }

  /** Brings the link up again if it failed and its retry is due. */
  async retryIfDown(): Promise<void> {
    if (!this.link && Date.now() - this.linkTriedAt > LINK_RETRY_MS) await this.ensureLink();
  }

  /** The host's key as its agent reports it: a rotation's, or one the edge has not seen (its state lost). */
  async reported(publicKey: string | null): Promise<TunnelHostRow> {
    const host = await this.host();
    if (publicKey && publicKey !== host.wireguard_public_key && publicKey !== host.wireguard_next_key) return this.takeWireguardKey(host, publicKey);
    return host;
  }

  /** The plan's WireGuard part for the host; null while the edge's link is down. */
  planFor(host: TunnelHostRow): ReplyOf<'tunnel.req.plan'>['wireguard'] {
    const { settings } = this.d;
    const link = this.link;
    return link
      ? {
          edgePublicKey: link.key.publicKey,
          edgeEndpoint: settings.wgEndpoint,
          edgeAddress: link.address,
          hostAddress: linkAddress(settings.wgRange, host.link_index),
          range: settings.wgRange,
          hostPublicKey: host.wireguard_next_key ?? host.wireguard_public_key,
          rotating: host.wireguard_next_key !== null,
        }
      : null;
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
    this.d.changed();
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
        this.d.changed();
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
    this.d.changed();
  }

  /** The host's row, made with the next free link address the first time. */
  async host(): Promise<TunnelHostRow> {
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
}
