import { createServer, type Server, type Socket } from 'node:net';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Payload, ReplyOf } from '@switchyard/contracts';
import { dial, splice } from '@switchyard/tcp';
import {
  bringUpLink,
  createKeyFile,
  forgetProcess,
  type KeyFile,
  localHost,
  recordProcess,
  removeKeyFile,
  type ReverseTunnel,
  type Target,
  uniqueInterfaceName,
  type WireGuardLink,
} from '@switchyard/tunnels';
import { currentKeyFile } from './link-keys.js';
import { LocalNodeSide } from './ssh-paths.js';

type Plan = ReplyOf<'tunnel.req.plan'>;

export interface NodeAgentDeps {
  hostId: string;
  stateDir: string;
  /** The UDP port this host's WireGuard listens on. */
  wgPort: number;
  sshUser: string;
  sshRetryMs: number;
  requestPlan(req: Payload<'tunnel.req.plan'>): Promise<Plan>;
  log: { info(o: object, msg: string): void; warn(o: object, msg: string): void };
}

interface Listener {
  server: Server;
  target: Target;
  open: Set<Socket>;
}

const DIAL_TIMEOUT_MS = 5_000;
const HALF_CLOSE_MS = 60_000;
/** Keepalive towards the edge: it keeps the edge knowing this host's endpoint, so the edge can dial in. */
const KEEPALIVE_SEC = 5;

/**
 * The agent of a node host (TUNNEL_ROLE=node): runs what the edge's plan says, and nothing it
 * no longer says. Its WireGuard end (key made here, public half handed over), a listener per
 * tunnel on its link address splicing to the node's published port (Docker publishes on
 * 127.0.0.1: no firewall rule of the host's is touched), and an `ssh -R` per SSH key, whose
 * private halves are made and kept here. `sync` pulls the plan and converges, one pass at a
 * time; the edge's tunnel.evt.replanned and a timer call it.
 */
export class NodeAgent {
  private link: WireGuardLink | undefined;
  /** A rotation's new key, made here, not yet taken by the edge. */
  private nextKey: KeyFile | undefined;
  private edgePeer: { publicKey: string; endpoint: string; epoch: string } | undefined;
  private readonly listeners = new Map<number, Listener>();
  private readonly sessions = new Map<string, { session: ReverseTunnel; forwardPort: number; target: Target }>();
  private readonly side: LocalNodeSide;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(private readonly d: NodeAgentDeps) {
    this.side = new LocalNodeSide(d.stateDir, { sshUser: d.sshUser, sshRetryMs: d.sshRetryMs }, d.log);
  }

  /** Pulls the plan and converges; a call while a pass runs makes one more pass after it. */
  sync(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          if (this.stopped) return;
          await this.pass();
        } while (this.again);
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.running?.catch(() => undefined);
    for (const [keyId, s] of this.sessions) {
      await s.session.stop();
      await forgetProcess(this.d.stateDir, keyId);
    }
    this.sessions.clear();
    for (const port of [...this.listeners.keys()]) this.closeListener(port);
    await this.link?.down();
    await forgetProcess(this.d.stateDir, 'wireguard-go');
  }

  /** What runs now, for tests and logs. */
  state() {
    return {
      link: this.link ? { name: this.link.name, address: this.link.address, publicKey: this.link.key.publicKey } : null,
      listeners: [...this.listeners.keys()],
      sessions: [...this.sessions.keys()],
    };
  }

  private async pass(): Promise<void> {
    let plan = await this.ask();
    // Keys the edge wants: made here, their public halves handed over at once.
    const held = new Set((await this.heldKeys()).map((k) => k.keyId));
    const missing = plan.wantKeys.filter((k) => !held.has(k));
    for (const keyId of missing) await this.side.createKey(keyId);
    if (plan.rotateWireguard && !this.nextKey && this.link) this.nextKey = await createKeyFile(this.wgDir(), 'host');
    if (missing.length || this.nextKey) plan = await this.ask();
    await this.applyLink(plan);
    this.applyListeners(plan);
    await this.applySessions(plan);
    await this.dropKeys(plan);
  }

  private async ask(): Promise<Plan> {
    const current = this.link?.key ?? (await currentKeyFile(this.wgDir(), 'host'));
    return this.d.requestPlan({
      hostId: this.d.hostId,
      wireguardPublicKey: (this.nextKey ?? current).publicKey,
      sshKeys: await this.heldKeys(),
    });
  }

  private async applyLink(plan: Plan): Promise<void> {
    const wg = plan.wireguard;
    if (!wg) {
      if (this.link) await this.takeLinkDown();
      return;
    }
    if (this.link && this.link.address !== wg.hostAddress) await this.takeLinkDown();
    if (!this.link) {
      const key = await currentKeyFile(this.wgDir(), 'host');
      this.link = await bringUpLink({
        host: localHost,
        config: { interfaceName: uniqueInterfaceName(), range: wg.range, address: wg.hostAddress, listenPort: this.d.wgPort, stateDir: this.wgDir() },
        key,
      });
      if (this.link.pid) await recordProcess(this.d.stateDir, 'wireguard-go', this.link.pid, this.link.name);
      this.d.log.info({ interface: this.link.name, mode: this.link.mode, address: wg.hostAddress }, 'WireGuard link to the edge up');
    }
    const peer = { publicKey: wg.edgePublicKey, endpoint: wg.edgeEndpoint, epoch: wg.edgeEpoch };
    const was = this.edgePeer;
    if (was?.publicKey !== peer.publicKey || was.endpoint !== peer.endpoint || was.epoch !== peer.epoch) {
      const wanted = { publicKey: peer.publicKey, endpoint: peer.endpoint, allowedIps: [`${wg.edgeAddress}/32`], persistentKeepaliveSec: KEEPALIVE_SEC };
      // A restarted edge drops the sessions this host still sends on and cannot call in itself
      // (it knows no endpoint of this host's): removing the peer drops them here too, and the
      // peer set again handshakes at its first keepalive.
      if (was && (was.publicKey !== peer.publicKey || was.epoch !== peer.epoch)) await this.link.removePeer(was.publicKey);
      await this.link.setPeer(wanted);
      if (was) this.d.log.info({ interface: this.link.name, edgeRestarted: was.epoch !== peer.epoch }, 'WireGuard peer of the edge set again');
      this.edgePeer = peer;
    }
    // The edge took the rotation's key: switch to it (it handshakes at once), then forget the old one.
    if (this.nextKey && wg.hostPublicKey === this.nextKey.publicKey) {
      const previous = await this.link.usePrivateKey(this.nextKey);
      this.nextKey = undefined;
      await removeKeyFile(previous);
      this.d.log.info({ interface: this.link.name }, 'switched to the new WireGuard key');
    }
  }

  private async takeLinkDown(): Promise<void> {
    for (const port of [...this.listeners.keys()]) this.closeListener(port);
    await this.link?.down();
    await forgetProcess(this.d.stateDir, 'wireguard-go');
    this.link = undefined;
    this.edgePeer = undefined;
  }

  /** One listener per tunnel on the link address; a moved target takes new connections, open ones stay. */
  private applyListeners(plan: Plan): void {
    const wanted = new Map(this.link ? plan.listeners.map((l) => [l.port, l.target] as const) : []);
    for (const port of [...this.listeners.keys()]) if (!wanted.has(port)) this.closeListener(port);
    for (const [port, target] of wanted) {
      const running = this.listeners.get(port);
      if (running) {
        running.target = target;
        continue;
      }
      const listener: Listener = { server: createServer({ allowHalfOpen: true }), target, open: new Set() };
      listener.server.on('connection', (client) => this.carry(listener, client));
      listener.server.on('error', (err) => {
        this.d.log.warn({ port, err: err.message }, 'a tunnel listener failed; it is opened again at the next sync');
        this.closeListener(port);
      });
      listener.server.listen({ host: this.link!.address, port });
      this.listeners.set(port, listener);
    }
  }

  private carry(listener: Listener, client: Socket): void {
    client.on('error', () => undefined);
    listener.open.add(client);
    client.once('close', () => listener.open.delete(client));
    dial({ ...listener.target, timeoutMs: DIAL_TIMEOUT_MS }).then(
      (upstream) => splice(client, upstream, { halfCloseMs: HALF_CLOSE_MS }),
      () => client.destroy(),
    );
  }

  private closeListener(port: number): void {
    const l = this.listeners.get(port);
    if (!l) return;
    this.listeners.delete(port);
    l.server.close();
    for (const s of l.open) s.destroy();
  }

  private async applySessions(plan: Plan): Promise<void> {
    const wanted = new Map(plan.edgeSsh ? plan.sessions.map((s) => [s.keyId, s] as const) : []);
    for (const [keyId, s] of [...this.sessions]) {
      const w = wanted.get(keyId);
      if (w && w.forwardPort === s.forwardPort && w.target.host === s.target.host && w.target.port === s.target.port) continue;
      this.sessions.delete(keyId);
      await s.session.stop();
      await forgetProcess(this.d.stateDir, keyId);
    }
    const held = new Set((await this.heldKeys()).map((k) => k.keyId));
    for (const [keyId, w] of wanted) {
      if (this.sessions.has(keyId)) continue;
      if (!held.has(keyId)) {
        this.d.log.warn({ keyId }, 'the edge names an SSH key this host does not hold; its tunnel needs a rotation');
        continue;
      }
      const session = await this.side.startSession({ key_id: keyId, listen_port: w.forwardPort }, w.target, plan.edgeSsh!, keyId);
      this.sessions.set(keyId, { session, forwardPort: w.forwardPort, target: w.target });
    }
  }

  /** Private halves the edge no longer keeps (revoked, rotated out, a closed tunnel's) are deleted. */
  private async dropKeys(plan: Plan): Promise<void> {
    const keep = new Set([...plan.keepKeys, ...plan.wantKeys, ...this.sessions.keys()]);
    for (const { keyId } of await this.heldKeys()) if (!keep.has(keyId)) await this.side.discardKey(keyId);
  }

  private async heldKeys(): Promise<Array<{ keyId: string; publicKey: string }>> {
    const dir = join(this.d.stateDir, 'keys');
    const names = await readdir(dir).catch(() => [] as string[]);
    const held: Array<{ keyId: string; publicKey: string }> = [];
    for (const name of names) {
      if (!name.endsWith('.pub')) continue;
      const keyId = name.slice(0, -'.pub'.length);
      if (!names.includes(keyId)) continue;
      held.push({ keyId, publicKey: (await readFile(join(dir, name), 'utf8')).trim() });
    }
    return held;
  }

  private wgDir(): string {
    return join(this.d.stateDir, 'wireguard');
  }
}
