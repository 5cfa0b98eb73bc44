import { assertValid, checkLinkConfig, checkPeer, type WireGuardLinkConfig, type WireGuardPeer } from './config.js';
import { parseWgDump, type WireGuardInterfaceState, type WireGuardPeerState } from './dump.js';
import type { KeyFile } from './keys.js';
import { pollUntil } from '../poll.js';
import { type CommandHost, watch, type WatchedProcess } from '../host.js';

// One end of a WireGuard link on one host: an interface (the kernel's where the module exists,
// else wireguard-go on the TUN device), its private key, its address from the operator's range,
// and its peers with a route for each peer's allowed IPs. Everything runs on the given host
// (../host.ts) with the field's tools (ip, wg, wireguard-go).
//
// Reaching a node's container: the edge lists the node host's container network among the
// node peer's allowed IPs, and the node host forwards (net.ipv4.ip_forward=1, as any Docker
// host has) between its WireGuard interface and that network. Chosen over a relay process on
// the node host because the kernel then carries every port and protocol with no process in the
// data path to restart, size or fail; the container sees the edge's link address as its peer,
// and replies find their way back through the node host's route to it. What the node host must
// allow (Docker's FORWARD policy) is the operator's, as for any routed network.

export type WireGuardMode = 'kernel' | 'userspace';

export interface BringUpOptions {
  /** Where the link's commands run: localHost, or a test's host. */
  host: CommandHost;
  config: WireGuardLinkConfig;
  /** The interface's private key (see createKeyFile). */
  key: KeyFile;
  /** Try the kernel's WireGuard first (the default); false runs wireguard-go straight away. */
  preferKernel?: boolean;
  /** How long wireguard-go may take to open its control socket; 5 s unless given. */
  startTimeoutMs?: number;
}

const START_TIMEOUT_MS = 5_000;
const START_POLL_MS = 25;

/** Brings up this host's end of a link; on any failure, what it started is taken down again. */
export async function bringUpLink(opts: BringUpOptions): Promise<WireGuardLink> {
  const { host, config, key } = opts;
  assertValid(checkLinkConfig(config));
  const name = config.interfaceName;
  // Both checks first: a name in use elsewhere must fail here, not be configured over. The
  // control socket check matters most, since `wg` would talk to another namespace's wireguard-go.
  if (await succeeds(host, 'wg', ['show', name, 'listen-port'])) throw new Error(`a WireGuard interface ${name} already runs on this machine`);
  if (await succeeds(host, 'ip', ['link', 'show', 'dev', name])) throw new Error(`an interface ${name} already exists on this host`);

  let mode: WireGuardMode = 'userspace';
  let daemon: WatchedProcess | undefined;
  // The kernel refuses an unknown link type when its module is absent; any refusal means wireguard-go.
  if (opts.preferKernel !== false && (await succeeds(host, 'ip', ['link', 'add', 'dev', name, 'type', 'wireguard']))) mode = 'kernel';
  else daemon = await startWireguardGo(host, name, opts.startTimeoutMs ?? START_TIMEOUT_MS);

  const link = new WireGuardLink(host, config, mode, key, daemon);
  try {
    await host.exec('wg', ['set', name, 'private-key', key.privateKeyFile, 'listen-port', String(config.listenPort)]);
    // A /32: what is reachable through the link is decided per peer, by routes for its allowed IPs.
    await host.exec('ip', ['address', 'add', `${config.address}/32`, 'dev', name]);
    await host.exec('ip', ['link', 'set', 'dev', name, 'up']);
  } catch (err) {
    await link.down().catch(() => undefined);
    throw err;
  }
  return link;
}

async function succeeds(host: CommandHost, command: string, args: readonly string[]): Promise<boolean> {
  try {
    await host.exec(command, args);
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs `wireguard-go -f <name>` (foreground, so its pid is the daemon's and ours to end) and
 * waits until `wg` can talk to it over its control socket, /var/run/wireguard/<name>.sock.
 */
async function startWireguardGo(host: CommandHost, name: string, timeoutMs: number): Promise<WatchedProcess> {
  // Only what it needs: the manager's own environment may hold credentials wireguard-go has no use for.
  const env = { PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin', WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1', LOG_LEVEL: 'error' };
  const daemon = watch(host.spawn('wireguard-go', ['-f', name], env));
  const ready = await pollUntil(
    async () => daemon.exited() || (await succeeds(host, 'wg', ['show', name, 'listen-port'])),
    (stop) => stop,
    timeoutMs,
    START_POLL_MS,
  );
  if (!daemon.exited() && ready.met) return daemon;
  const why = daemon.exited() ? 'exited' : `had no control socket within ${timeoutMs} ms`;
  await daemon.stop().catch(() => undefined);
  throw new Error(`wireguard-go ${name} ${why}: ${daemon.output().trim().slice(-2000) || '(no output)'}`);
}

export class WireGuardLink {
  #key: KeyFile;
  #down = false;
  #gone = false;

  /** Use bringUpLink. */
  constructor(
    readonly host: CommandHost,
    readonly config: WireGuardLinkConfig,
    readonly mode: WireGuardMode,
    key: KeyFile,
    private readonly daemon: WatchedProcess | undefined,
  ) {
    this.#key = key;
  }

  get name(): string {
    return this.config.interfaceName;
  }

  /** This host's address on the link. */
  get address(): string {
    return this.config.address;
  }

  /** The key the interface holds now (its public half is what peers list). */
  get key(): KeyFile {
    return this.#key;
  }

  /** wireguard-go's pid; undefined for a kernel interface. */
  get pid(): number | undefined {
    return this.daemon?.pid;
  }

  /** Adds the peer or updates it: its allowed IPs replace the ones it had, and the routes follow. */
  async setPeer(peer: WireGuardPeer): Promise<void> {
    assertValid(checkPeer(peer));
    const before = (await this.peer(peer.publicKey))?.allowedIps ?? [];
    await this.wgSet(peerArgs(peer));
    await this.syncRoutes(before, peer.allowedIps);
  }

  /**
   * Accepts handshakes from a key a peer is about to switch to, routing nothing to it yet: the
   * first half of a rotation with overlap (see rotateNodeKey). Until replacePeer moves the
   * allowed IPs over, the old key keeps carrying the traffic.
   */
  async acceptPeerKey(publicKey: string, endpoint?: string): Promise<void> {
    await this.setPeer({ publicKey, allowedIps: [], ...(endpoint === undefined ? {} : { endpoint }) });
  }

  /**
   * Puts `peer` in the place of the peer keyed `oldPublicKey` in one `wg set`: its allowed IPs
   * move to the new key and the old key is gone, refused from then on.
   */
  async replacePeer(oldPublicKey: string, peer: WireGuardPeer): Promise<void> {
    assertValid(checkPeer(peer));
    if (oldPublicKey === peer.publicKey) return this.setPeer(peer);
    const state = await this.show();
    const before = state.peers.filter((p) => p.publicKey === oldPublicKey || p.publicKey === peer.publicKey).flatMap((p) => p.allowedIps);
    // Set first, then remove: wg applies them in order, and an allowed IP set on the new peer
    // leaves the old one, so at no point is the network without a peer.
    await this.wgSet([...peerArgs(peer), 'peer', oldPublicKey, 'remove']);
    await this.syncRoutes(before, peer.allowedIps);
  }

  /** Removes the peer: its key is refused and its routes go (revocation, expiry). */
  async removePeer(publicKey: string): Promise<void> {
    const before = (await this.peer(publicKey))?.allowedIps ?? [];
    await this.wgSet(['peer', publicKey, 'remove']);
    await this.syncRoutes(before, []);
  }

  /**
   * Switches the interface to another private key and returns the one it replaces (whose file
   * the caller removes once no peer needs it). The interface's sessions stop sending at once
   * but keep decrypting what peers still send on them, so a peer that accepts the new key
   * (acceptPeerKey) is handshaken with right away: each peer's keepalive is switched off and
   * back on in the same `wg set`, which is what makes WireGuard send one, and so a handshake,
   * immediately rather than on the next packet or keepalive interval.
   */
  async usePrivateKey(key: KeyFile): Promise<KeyFile> {
    const { peers } = await this.show();
    const nudges = peers.flatMap((p) => {
      const keepalive = p.persistentKeepaliveSec;
      return keepalive === null
        ? ['peer', p.publicKey, 'persistent-keepalive', '1', 'peer', p.publicKey, 'persistent-keepalive', 'off']
        : ['peer', p.publicKey, 'persistent-keepalive', 'off', 'peer', p.publicKey, 'persistent-keepalive', String(keepalive)];
    });
    await this.wgSet(['private-key', key.privateKeyFile, ...nudges]);
    const previous = this.#key;
    this.#key = key;
    return previous;
  }

  /** The interface and its peers as `wg show <if> dump` reports them, secrets left out. */
  async show(): Promise<WireGuardInterfaceState> {
    return parseWgDump(await this.host.exec('wg', ['show', this.name, 'dump']));
  }

  async peer(publicKey: string): Promise<WireGuardPeerState | undefined> {
    return (await this.show()).peers.find((p) => p.publicKey === publicKey);
  }

  /**
   * Deletes the interface and ends wireguard-go by its pid (on SIGTERM it removes its TUN
   * device and control socket). Safe to call again. Key files stay: removeKeyFile is separate.
   */
  /** Ends the link; may be called again after it failed, to finish what it could not. */
  async down(): Promise<void> {
    if (this.#gone) return;
    // No peer change from here on, even if taking it down fails half way.
    this.#down = true;
    if (this.daemon) await this.daemon.stop();
    // The kernel's interface needs deleting; after wireguard-go this only catches one left behind.
    if (await succeeds(this.host, 'ip', ['link', 'show', 'dev', this.name])) await this.host.exec('ip', ['link', 'delete', 'dev', this.name]);
    this.#gone = true;
  }

  private async wgSet(args: readonly string[]): Promise<void> {
    if (this.#down) throw new Error(`WireGuard interface ${this.name} is down`);
    await this.host.exec('wg', ['set', this.name, ...args]);
  }

  /** Routes what a peer now allows through the interface; drops routes it no longer does. */
  private async syncRoutes(before: readonly string[], after: readonly string[]): Promise<void> {
    for (const cidr of after) await this.host.exec('ip', ['route', 'replace', cidr, 'dev', this.name, 'src', this.address]);
    for (const cidr of before.filter((c) => !after.includes(c))) {
      // Gone already when the kernel dropped it with an address or another route replaced it.
      await this.host.exec('ip', ['route', 'delete', cidr, 'dev', this.name]).catch(() => undefined);
    }
  }
}

/** `peer <key> [endpoint h:p] allowed-ips a,b persistent-keepalive n|off` for `wg set`. */
export function peerArgs(peer: WireGuardPeer): string[] {
  return [
    'peer',
    peer.publicKey,
    ...(peer.endpoint === undefined ? [] : ['endpoint', peer.endpoint]),
    // An empty list clears the peer's allowed IPs (wg takes "" for none).
    'allowed-ips',
    peer.allowedIps.join(','),
    'persistent-keepalive',
    peer.persistentKeepaliveSec ? String(peer.persistentKeepaliveSec) : 'off',
  ];
}
