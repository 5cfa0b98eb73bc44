import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Payload, ReplyOf } from '@switchyard/contracts';
import { createKeyFile, forgetProcess, type KeyFile, removeKeyFile, type SpliceServer, startSpliceServer, type Target, type WireGuardLink } from '@switchyard/tunnels';
import { bringUpOwnLink, currentKeyFile, linkDir, takeDownOwnLink } from './own-link.js';
import { sameTargets } from './plan.js';
import { LocalNodeSide } from './local-side.js';
import type { SessionHandle } from './ssh-paths.js';

type Plan = ReplyOf<'tunnel.req.plan'>;

export interface NodeAgentDeps {
  hostId: string;
  stateDir: string;
  /** The UDP port this host's WireGuard listens on. */
  wgPort: number;
  sshRetryMs: number;
  /** Where the node's published ports may be besides loopback (exit-node-manager's NODE_PUBLISH_HOST). */
  publishAddresses: ReadonlySet<string>;
  requestPlan(req: Payload<'tunnel.req.plan'>): Promise<Plan>;
  log: { info(o: object, msg: string): void; warn(o: object, msg: string): void };
}

interface Session {
  handle: SessionHandle;
  forwardPort: number;
  targets: readonly Target[];
  balanced: boolean;
}

/** Keepalive towards the edge: it keeps the edge knowing this host's endpoint, so the edge can dial in. */
const KEEPALIVE_SEC = 5;

/**
 * The agent of a node host (TUNNEL_ROLE=node): runs what the edge's plan says, and nothing it
 * no longer says. Its WireGuard end (key made here, public half handed over), a listener per
 * tunnel on its link address splicing to the node's published port (Docker publishes on
 * 127.0.0.1: no firewall rule of the host's is touched), and an `ssh -R` per SSH key, whose
 * private halves are made and kept here. `sync` pulls the plan and converges, one pass at a
 * time; the edge's tunnel.evt.replanned and a timer call it. Each part converges on its own: a
 * WireGuard that will not come up leaves the ssh sessions, the fallback, running.
 */
export class NodeAgent {
  private link: WireGuardLink | undefined;
  /** A rotation's new key, made here, not yet taken by the edge. */
  private nextKey: KeyFile | undefined;
  /** The key a rotation replaced: kept until the edge says the rotation is over, as it may go back to it. */
  private previousKey: KeyFile | undefined;
  private edgePeer: { publicKey: string; endpoint: string; epoch: string } | undefined;
  /** Per tunnel port; a promise while it starts listening. */
  private readonly listeners = new Map<number, Promise<SpliceServer | undefined>>();
  private readonly sessions = new Map<string, Session>();
  /** The edge run the sessions were started against. */
  private sessionsEpoch: string | undefined;
  private readonly side: LocalNodeSide;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(private readonly d: NodeAgentDeps) {
    this.side = new LocalNodeSide(d.stateDir, { sshRetryMs: d.sshRetryMs }, d.log);
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
    for (const keyId of [...this.sessions.keys()]) await this.endSession(keyId);
    await this.takeLinkDown();
  }

  private async pass(): Promise<void> {
    let plan = await this.ask();
    // Keys the edge wants: made here, their public halves handed over at once.
    const held = new Set((await this.heldKeys()).map((k) => k.keyId));
    const missing = plan.wantKeys.filter((k) => !held.has(k));
    for (const keyId of missing) await this.side.createKey(keyId);
    const rotate = plan.rotateWireguard && !this.nextKey && this.link !== undefined;
    if (rotate) this.nextKey = await createKeyFile(linkDir(this.d.stateDir), 'host');
    if (missing.length || rotate) plan = await this.ask();
    const failed: string[] = [];
    const step = async (what: string, work: () => Promise<void>) => {
      try {
        await work();
      } catch (err) {
        failed.push(`${what}: ${(err as Error).message}`);
      }
    };
    await step('wireguard', () => this.applyLink(plan));
    await step('listeners', () => this.applyListeners(plan));
    await step('ssh sessions', () => this.applySessions(plan));
    await step('keys', () => this.dropKeys(plan));
    if (failed.length) throw new Error(failed.join('; '));
  }

  private async ask(): Promise<Plan> {
    const current = this.link?.key ?? (await currentKeyFile(this.d.stateDir, 'host', this.keptKeyFiles()));
    return this.d.requestPlan({
      hostId: this.d.hostId,
      wireguardPublicKey: (this.nextKey ?? current).publicKey,
      sshKeys: await this.heldKeys(),
    });
  }

  private async applyLink(plan: Plan): Promise<void> {
    const wg = plan.wireguard;
    if (!wg) return this.takeLinkDown();
    if (this.link && this.link.address !== wg.hostAddress) await this.takeLinkDown();
    if (!this.link) {
      const key = await currentKeyFile(this.d.stateDir, 'host', this.keptKeyFiles());
      this.link = await bringUpOwnLink({ stateDir: this.d.stateDir, label: 'host', key, range: wg.range, address: wg.hostAddress, listenPort: this.d.wgPort });
      this.d.log.info({ interface: this.link.name, mode: this.link.mode, address: wg.hostAddress }, 'WireGuard link to the edge up');
    }
    const link = this.link;
    const peer = { publicKey: wg.edgePublicKey, endpoint: wg.edgeEndpoint, epoch: plan.edgeEpoch };
    const was = this.edgePeer;
    if (was?.publicKey !== peer.publicKey || was.endpoint !== peer.endpoint || was.epoch !== peer.epoch) {
      const wanted = { publicKey: peer.publicKey, endpoint: peer.endpoint, allowedIps: [`${wg.edgeAddress}/32`], persistentKeepaliveSec: KEEPALIVE_SEC };
      // A restarted edge drops the sessions this host still sends on and cannot call in itself
      // (it knows no endpoint of this host's): removing the peer drops them here too, and the
      // peer set again handshakes at its first keepalive.
      if (was && (was.publicKey !== peer.publicKey || was.epoch !== peer.epoch)) await link.removePeer(was.publicKey);
      await link.setPeer(wanted);
      if (was) this.d.log.info({ interface: link.name, edgeRestarted: was.epoch !== peer.epoch }, 'WireGuard peer of the edge set again');
      this.edgePeer = peer;
    }
    await this.followRotation(link, wg);
  }

  /**
   * The edge took the rotation's key: switch to it (it handshakes at once). The old key's file
   * goes once the edge says the rotation is over and names the key in use.
   */
  private async followRotation(link: WireGuardLink, wg: NonNullable<Plan['wireguard']>): Promise<void> {
    if (this.nextKey && wg.hostPublicKey === this.nextKey.publicKey) {
      this.previousKey = await link.usePrivateKey(this.nextKey);
      this.nextKey = undefined;
      this.d.log.info({ interface: link.name }, 'switched to the new WireGuard key');
      return;
    }
    if (this.previousKey && wg.hostPublicKey === link.key.publicKey && !wg.rotating) {
      await removeKeyFile(this.previousKey);
      this.previousKey = undefined;
    }
  }

  private keptKeyFiles(): string[] {
    return [this.nextKey, this.previousKey].flatMap((k) => (k ? [k.privateKeyFile] : []));
  }

  private async takeLinkDown(): Promise<void> {
    for (const port of [...this.listeners.keys()]) await this.closeListener(port);
    if (this.link) await takeDownOwnLink(this.link, this.d.stateDir, 'host');
    this.link = undefined;
    this.edgePeer = undefined;
  }

  /**
   * One listener per tunnel on the link address, carrying only the edge's connections (anything
   * else on this host could reach the address too); moved targets take new connections, open
   * ones stay.
   */
  private async applyListeners(plan: Plan): Promise<void> {
    const link = this.link;
    const edgeAddress = plan.wireguard?.edgeAddress;
    const wanted = new Map(link && edgeAddress ? plan.listeners.map((l) => [l.port, this.publishedOnly(l.targets)] as const) : []);
    for (const port of [...this.listeners.keys()]) if (!wanted.has(port)) await this.closeListener(port);
    for (const [port, targets] of wanted) {
      const running = await this.listeners.get(port);
      if (running) {
        if (!sameTargets(running.targets(), targets)) running.setTargets(targets);
        continue;
      }
      const starting = startSpliceServer({ host: link!.address, port, targets, allowFrom: edgeAddress! }).catch((err: Error) => {
        this.d.log.warn({ port, err: err.message }, 'could not listen for a tunnel; tried again at the next sync');
        this.listeners.delete(port);
        return undefined;
      });
      this.listeners.set(port, starting);
      await starting;
    }
  }

  private async closeListener(port: number): Promise<void> {
    const l = this.listeners.get(port);
    this.listeners.delete(port);
    await (await l)?.close();
  }

  private async applySessions(plan: Plan): Promise<void> {
    // A restarted edge: the sessions' backoff may have grown while it was away; its sshd answers
    // now (the plan names it once it runs), so every session starts again at once.
    if (this.sessionsEpoch !== undefined && this.sessionsEpoch !== plan.edgeEpoch) for (const keyId of [...this.sessions.keys()]) await this.endSession(keyId);
    this.sessionsEpoch = plan.edgeEpoch;
    const wanted = new Map(plan.edgeSsh ? plan.sessions.map((s) => [s.keyId, { ...s, targets: this.publishedOnly(s.targets) }] as const) : []);
    for (const [keyId, s] of [...this.sessions]) {
      const w = wanted.get(keyId);
      if (w && w.forwardPort === s.forwardPort && w.balanced === s.balanced) {
        if (sameTargets(w.targets, s.targets)) continue;
        // A pool's session takes new nodes under it; a node's forward is fixed, so a moved node means a new session.
        if (s.handle.setTargets) {
          s.handle.setTargets(w.targets);
          s.targets = w.targets;
          continue;
        }
      }
      await this.endSession(keyId);
    }
    const held = new Set((await this.heldKeys()).map((k) => k.keyId));
    for (const [keyId, w] of wanted) {
      if (this.sessions.has(keyId)) continue;
      if (!held.has(keyId)) continue; // the edge replaces it (a lost key) once this host's report reaches it
      // One that cannot start (its node not on an address this host may dial) holds up no other.
      try {
        const handle = await this.side.startSession({ key_id: keyId, listen_port: w.forwardPort }, { targets: w.targets, balanced: w.balanced }, plan.edgeSsh!, keyId);
        this.sessions.set(keyId, { handle, forwardPort: w.forwardPort, targets: w.targets, balanced: w.balanced });
      } catch (err) {
        this.d.log.warn({ keyId, err: (err as Error).message }, 'could not start an ssh session; tried again at the next sync');
      }
    }
  }

  private async endSession(keyId: string): Promise<void> {
    const s = this.sessions.get(keyId);
    this.sessions.delete(keyId);
    await s?.handle.stop();
    await forgetProcess(this.d.stateDir, keyId);
  }

  /**
   * Docker publishes node ports on this host's loopback (or NODE_PUBLISH_HOST): that is all the
   * edge may aim this host at. Another address in a plan is dropped, so no plan turns the agent
   * into a way into the host's networks.
   */
  private publishedOnly(targets: readonly Target[]): Target[] {
    const ok = targets.filter((t) => /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(t.host) || this.d.publishAddresses.has(t.host));
    if (ok.length < targets.length)
      this.d.log.warn({ dropped: targets.filter((t) => !ok.includes(t)) }, 'the plan names targets where no node publishes (TUNNEL_PUBLISH_ADDRESSES): ignored');
    return ok;
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
}
