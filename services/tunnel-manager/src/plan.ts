import { isIPv4 } from 'node:net';
import { TUNNEL_DEFAULTS, type PublishedPort, type TunnelPathKind, type TunnelSpec } from '@switchyard/contracts';
import type { PathSpec, Target } from '@switchyard/tunnels';

// Pure decisions of tunnel-manager: which port, which paths the forwarder gets, when keys rotate.

export type ResolvedTunnelSpec = TunnelSpec & Required<Pick<TunnelSpec, keyof typeof TUNNEL_DEFAULTS>>;

export function withTunnelDefaults(spec: TunnelSpec): ResolvedTunnelSpec {
  return { ...TUNNEL_DEFAULTS, ...spec } as ResolvedTunnelSpec;
}

/** The lowest port of [min, max] nobody holds. */
export function lowestFreePort(min: number, max: number, taken: ReadonlySet<number>): number | undefined {
  for (let p = min; p <= max; p++) if (!taken.has(p)) return p;
  return undefined;
}

/** The node's host port for a container port, or why there is none. */
export function publishedPort(ports: readonly PublishedPort[], containerPort: number): PublishedPort | string {
  const found = ports.find((p) => p.containerPort === containerPort);
  if (found) return found;
  const published = ports.map((p) => p.containerPort);
  return published.length ? `the node publishes ${published.join(', ')}, not ${containerPort}` : `the node publishes no port (it may be stopped); not ${containerPort}`;
}

export const WIREGUARD_SINGLE_HOST =
  "the node's host is this edge (single-host mode): a WireGuard link needs tunnel-manager in the edge role, with an agent on the node's host (TUNNEL_ROLE=node)";

/**
 * Where the edge dials each path of a tunnel: `direct` at its address and the node's host port,
 * `ssh` at the edge-loopback port its session forwards, `wireguard` at the node host agent's
 * listener on its link address. A path that cannot run here is left out
 * of the forwarder, with the reason it is down.
 */
export function forwarderPaths(
  spec: TunnelSpec,
  hostPort: number,
  sshListenPort: number | undefined,
  directAddresses: ReadonlySet<string>,
  /** The node host's listener on its WireGuard link address; none in single-host mode. */
  wireguard?: Target,
): { paths: PathSpec[]; unavailable: Array<{ kind: TunnelPathKind; reason: string }> } {
  const paths: PathSpec[] = [];
  const unavailable: Array<{ kind: TunnelPathKind; reason: string }> = [];
  for (const p of spec.paths) {
    if (p.kind === 'direct') {
      if (directAddresses.has(p.address!)) paths.push({ kind: 'direct', target: { host: p.address!, port: hostPort } });
      else unavailable.push({ kind: 'direct', reason: notANodeHost(p.address!) });
    } else if (p.kind === 'ssh') {
      if (sshListenPort === undefined) unavailable.push({ kind: 'ssh', reason: 'no SSH session key yet' });
      else paths.push({ kind: 'ssh', target: sshTarget(sshListenPort) });
    } else if (wireguard) paths.push({ kind: 'wireguard', target: wireguard });
    else unavailable.push({ kind: p.kind, reason: WIREGUARD_SINGLE_HOST });
  }
  return { paths, unavailable };
}

export const notANodeHost = (address: string) => `${address} is not the address of a node host (TUNNEL_DIRECT_ADDRESSES)`;

/** What a tenant's spec may not ask of this edge, each with its field. */
export function specProblems(spec: TunnelSpec, directAddresses: ReadonlySet<string>): string[] {
  return spec.paths.flatMap((p, i) => (p.kind === 'direct' && !directAddresses.has(p.address!) ? [`paths.${i}.address: ${notANodeHost(p.address!)}`] : []));
}

interface PortSettings {
  TUNNEL_PORT_MIN: number;
  TUNNEL_PORT_MAX: number;
  TUNNEL_SSH_PORT: number;
  TUNNEL_SSH_FORWARD_MIN: number;
  TUNNEL_SSH_FORWARD_MAX: number;
  TUNNEL_DIRECT_ADDRESSES: string;
}

/** Port ranges that are empty or overlap, and addresses that are not dotted quads: each "VARIABLE: reason". */
export function settingsProblems(c: PortSettings): string[] {
  const problems: string[] = [];
  if (c.TUNNEL_PORT_MIN > c.TUNNEL_PORT_MAX) problems.push(`TUNNEL_PORT_MIN: ${c.TUNNEL_PORT_MIN} is above TUNNEL_PORT_MAX (${c.TUNNEL_PORT_MAX})`);
  if (c.TUNNEL_SSH_FORWARD_MIN > c.TUNNEL_SSH_FORWARD_MAX)
    problems.push(`TUNNEL_SSH_FORWARD_MIN: ${c.TUNNEL_SSH_FORWARD_MIN} is above TUNNEL_SSH_FORWARD_MAX (${c.TUNNEL_SSH_FORWARD_MAX})`);
  const within = (p: number, min: number, max: number) => p >= min && p <= max;
  if (within(c.TUNNEL_SSH_PORT, c.TUNNEL_PORT_MIN, c.TUNNEL_PORT_MAX)) problems.push(`TUNNEL_SSH_PORT: ${c.TUNNEL_SSH_PORT} is inside TUNNEL_PORT_MIN..MAX`);
  if (within(c.TUNNEL_SSH_PORT, c.TUNNEL_SSH_FORWARD_MIN, c.TUNNEL_SSH_FORWARD_MAX)) problems.push(`TUNNEL_SSH_PORT: ${c.TUNNEL_SSH_PORT} is inside TUNNEL_SSH_FORWARD_MIN..MAX`);
  if (c.TUNNEL_SSH_FORWARD_MIN <= c.TUNNEL_PORT_MAX && c.TUNNEL_PORT_MIN <= c.TUNNEL_SSH_FORWARD_MAX)
    problems.push('TUNNEL_SSH_FORWARD_MIN: the forward ports overlap TUNNEL_PORT_MIN..MAX');
  for (const a of directAddressList(c.TUNNEL_DIRECT_ADDRESSES)) if (!isIPv4(a)) problems.push(`TUNNEL_DIRECT_ADDRESSES: ${JSON.stringify(a)} is not an IPv4 address`);
  return problems;
}

export function directAddressList(value: string): string[] {
  return value
    .split(',')
    .map((a) => a.trim())
    .filter(Boolean);
}

export const sshTarget = (listenPort: number): Target => ({ host: '127.0.0.1', port: listenPort });

/** Where the node's published port is dialled on its own host (a wildcard publish answers on loopback). */
export const nodeTarget = (port: PublishedPort): Target => ({ host: port.hostIp === '0.0.0.0' || port.hostIp === '::' ? '127.0.0.1' : port.hostIp, port: port.hostPort });

export function nextRotation(rotatedAt: Date, spec: TunnelSpec): Date {
  return new Date(rotatedAt.getTime() + withTunnelDefaults(spec).rotateEveryHours * 3_600_000);
}

export function keyLifetimeMs(spec: TunnelSpec): number {
  return withTunnelDefaults(spec).keyLifetimeDays * 86_400_000;
}
