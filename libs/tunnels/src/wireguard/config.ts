import { randomBytes } from 'node:crypto';
import { isAbsolute } from 'node:path';
import { ipv4Text, ipv4Value, networkContains, networkSize, parseIpv4Network } from './ipv4.js';

// What a WireGuard link and its peers are made of, checked before any command runs, so a bad
// value is refused with the field it came from rather than as a `wg` error halfway through.

/** Linux's limit on an interface name (IFNAMSIZ - 1). */
export const MAX_INTERFACE_NAME = 15;

export interface WireGuardLinkConfig {
  /**
   * Unique on the machine, not just in its namespace: wireguard-go's control socket
   * (/var/run/wireguard/<name>.sock) is shared by every namespace. At most 15 characters.
   */
  interfaceName: string;
  /** The private range the operator gives the links' addresses, e.g. `10.99.0.0/24`. */
  range: string;
  /** This host's address on the link, inside `range` (see linkAddress). */
  address: string;
  /** The UDP port WireGuard listens on. */
  listenPort: number;
  /** A host-local directory for private key files, absolute; created with mode 0700. */
  stateDir: string;
}

export interface WireGuardPeer {
  /** The peer's public key (base64, as `wg pubkey` prints it). */
  publicKey: string;
  /** `host:port` the peer listens on; omitted for a peer that only calls in. */
  endpoint?: string;
  /** The networks routed to this peer and accepted from it (IPv4 CIDRs); empty for none. */
  allowedIps: readonly string[];
  /** Seconds between keepalives when idle (keeps NAT state open); 0 or omitted for off. */
  persistentKeepaliveSec?: number;
}

export interface ConfigProblem {
  /** The field at fault, dotted from the object checked (`peer.allowedIps[1]`). */
  field: string;
  message: string;
}

export class WireGuardConfigError extends Error {
  constructor(readonly problems: readonly ConfigProblem[]) {
    super(`invalid WireGuard configuration: ${problems.map((p) => `${p.field}: ${p.message}`).join('; ')}`);
    this.name = 'WireGuardConfigError';
  }
}

/** A Curve25519 key as wg prints it: 32 bytes in base64, whose last character carries 4 bits. */
const KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

export function isWireGuardKey(text: string): boolean {
  return KEY.test(text);
}

/** The reason `name` cannot be an interface name, or null when it can. */
export function interfaceNameProblem(name: string): string | null {
  if (name.length === 0 || name.length > MAX_INTERFACE_NAME) return `must be 1-${MAX_INTERFACE_NAME} characters, got ${name.length}`;
  // Stricter than the kernel (which refuses only '/', ':' and whitespace): the name is also a file name under /var/run/wireguard.
  if (!/^[A-Za-z0-9_.-]+$/.test(name) || name === '.' || name === '..') return 'may hold only letters, digits, "_", "." and "-"';
  return null;
}

/**
 * A fresh interface name: `prefix` and six random hex digits. Random, not counted, because two
 * processes (two tunnel-managers, two test files) pick names on one machine without talking.
 */
export function uniqueInterfaceName(prefix = 'sywg'): string {
  const name = `${prefix}${randomBytes(3).toString('hex')}`;
  const problem = interfaceNameProblem(name);
  if (problem) throw new WireGuardConfigError([{ field: 'prefix', message: `makes a name that ${problem}` }]);
  return name;
}

/**
 * The `index`th host address of the operator's range: 1 is the first usable one (the edge's,
 * by convention), and so on. The network and broadcast addresses are never handed out.
 */
export function linkAddress(range: string, index: number): string {
  const network = parseIpv4Network(range);
  if (typeof network === 'string') throw new WireGuardConfigError([{ field: 'range', message: network }]);
  const reserved = network.prefix < 31 ? 1 : 0;
  const usable = networkSize(network) - 2 * reserved;
  if (!Number.isInteger(index) || index < 1 || index > usable) {
    throw new WireGuardConfigError([{ field: 'index', message: `${index} is outside 1-${usable}, the host addresses of ${range}` }]);
  }
  return ipv4Text(network.base + reserved + index - 1);
}

function portProblem(port: number): string | null {
  return Number.isInteger(port) && port >= 1 && port <= 65535 ? null : `must be a port number 1-65535, got ${port}`;
}

export function checkLinkConfig(config: WireGuardLinkConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const add = (field: string, message: string | null) => message && problems.push({ field, message });
  add('interfaceName', interfaceNameProblem(config.interfaceName));
  const range = parseIpv4Network(config.range);
  add('range', typeof range === 'string' ? range : null);
  const address = ipv4Value(config.address);
  if (address === null) add('address', `"${config.address}" is not an IPv4 address`);
  else if (typeof range !== 'string') {
    if (!networkContains(range, address)) add('address', `${config.address} is outside the range ${config.range}`);
    else if (range.prefix < 31 && (address === range.base || address === range.base + networkSize(range) - 1)) {
      add('address', `${config.address} is the network or broadcast address of ${config.range}`);
    }
  }
  add('listenPort', portProblem(config.listenPort));
  if (!isAbsolute(config.stateDir)) add('stateDir', `must be an absolute path, got "${config.stateDir}"`);
  return problems;
}

function endpointProblem(endpoint: string): string | null {
  const colon = endpoint.lastIndexOf(':');
  const host = endpoint.slice(0, colon);
  const port = Number(endpoint.slice(colon + 1));
  if (colon <= 0 || !/^\d+$/.test(endpoint.slice(colon + 1))) return `"${endpoint}" is not host:port`;
  // An IPv4 address or a DNS name (wg resolves it once, when the peer is set).
  const isName = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(host);
  if (ipv4Value(host) === null && (!isName || /^[\d.]+$/.test(host))) return `"${host}" is neither an IPv4 address nor a host name`;
  return portProblem(port);
}

export function checkPeer(peer: WireGuardPeer, field = 'peer'): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const add = (f: string, message: string | null) => message && problems.push({ field: `${field}.${f}`, message });
  add('publicKey', isWireGuardKey(peer.publicKey) ? null : 'is not a WireGuard key (44 characters of base64)');
  if (peer.endpoint !== undefined) add('endpoint', endpointProblem(peer.endpoint));
  peer.allowedIps.forEach((cidr, i) => {
    const network = parseIpv4Network(cidr);
    add(`allowedIps[${i}]`, typeof network === 'string' ? network : null);
  });
  const keepalive = peer.persistentKeepaliveSec;
  if (keepalive !== undefined && !(Number.isInteger(keepalive) && keepalive >= 0 && keepalive <= 65535)) {
    add('persistentKeepaliveSec', `must be 0-65535 seconds, got ${keepalive}`);
  }
  return problems;
}

/** Throws a WireGuardConfigError listing every problem, if there is any. */
export function assertValid(problems: readonly ConfigProblem[]): void {
  if (problems.length > 0) throw new WireGuardConfigError(problems);
}
