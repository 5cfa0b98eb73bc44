import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Payload, ReplyOf } from '@switchyard/contracts';
import { Rejection } from '@switchyard/bus';
import type { Kysely } from '@switchyard/db';
import { OrderFailure } from '@switchyard/service-kit';
import { knownHostsLine, pollUntil, probe, type SshEdge, type Target } from '@switchyard/tunnels';
import { EdgeLink, type EdgeLinkSettings } from './edge-link.js';
import { sameTargets } from './plan.js';
import type { EdgeSshAddress, NodeSide, SessionHandle, SessionKey, SessionRoute } from './ssh-paths.js';
import type { Database } from './tables.js';

export interface EdgeHostSettings extends EdgeLinkSettings {
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
const UP_POLL_MS = 200;

/**
 * The edge role's side of its node hosts (TUNNEL_ROLE=edge): the agent's plan, its WireGuard
 * link (EdgeLink), and, as the ssh paths' NodeSide, the keys and sessions it asks each host's
 * agent for. An agent pulls its plan (`tunnel.req.plan`) and hands over public halves there;
 * private halves never leave the host. What a host runs is derived from the tunnels live here,
 * so an edge restart rebuilds it from the tables like the rest.
 */
export class EdgeHosts implements NodeSide {
  /** The edge's WireGuard end and the host's key. */
  readonly link: EdgeLink;
  private readonly pending = new Map<string, PendingKey>();
  private readonly sessions = new Map<string, { forwardPort: number; targets: readonly Target[]; balanced: boolean }>();
  private readonly listeners = new Map<number, readonly Target[]>();
  /** The ssh keys each agent said it holds at its last request; none yet after a start. */
  private readonly reported = new Map<string, ReadonlySet<string>>();
  private readonly epoch = randomUUID();
  /** Plan requests are answered one at a time: each reads and may change the host's row and the link. */
  private planning: Promise<unknown> = Promise.resolve();

  constructor(private readonly d: EdgeHostDeps) {
    this.link = new EdgeLink({ db: d.db, log: d.log, settings: d.settings, changed: () => this.changed(), linkRotated: () => d.linkRotated() });
  }

  start(): Promise<void> {
    return this.link.start();
  }

  /** Tells the host's agent to ask for its plan now: once the plan's responder runs, the new epoch reaches it at once. */
  announce(): void {
    this.changed();
  }

  stop(): Promise<void> {
    return this.link.stop();
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
    await this.link.retryIfDown();
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
    const host = await this.link.reported(req.wireguardPublicKey);
    await db.updateTable('tunnel_hosts').set({ seen_at: new Date() }).where('host_id', '=', host.host_id).execute();

    const now = Date.now();
    for (const [keyId, p] of this.pending) if (p.publicKey !== undefined && now - p.askedAt > PENDING_KEEP_MS) this.pending.delete(keyId);
    const live = await db.selectFrom('tunnel_keys').select('key_id').where('revoked_at', 'is', null).execute();
    const mine = [...this.pending].filter(([, p]) => p.hostId === req.hostId);
    const edge = await this.d.sshEdge();
    return {
      hostId: req.hostId,
      edgeEpoch: this.epoch,
      wireguard: this.link.planFor(host),
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

  private changed(): void {
    const hostId = this.d.settings.hostId;
    void this.d.notify(hostId).catch((err: Error) => this.d.log.warn({ hostId, err: err.message }, "could not tell the node host's agent; it asks again on its timer"));
  }
}
