import { isIPv4 } from 'node:net';
import { type NodeView, type PoolView, TUNNEL_DEFAULTS, type PublishedPort, type TunnelPathKind, type TunnelSpec } from '@switchyard/contracts';
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
  /** The node's host port, for a direct path; none for a pool's tunnel. */
  hostPort: number | undefined,
  sshListenPort: number | undefined,
  directAddresses: ReadonlySet<string>,
  /** The node host's listener on its WireGuard link address; none in single-host mode. */
  wireguard?: Target,
): { paths: PathSpec[]; unavailable: Array<{ kind: TunnelPathKind; reason: string }> } {
  const paths: PathSpec[] = [];
  const unavailable: Array<{ kind: TunnelPathKind; reason: string }> = [];
  for (const p of spec.paths) {
    if (p.kind === 'direct') {
      if (hostPort === undefined) unavailable.push({ kind: 'direct', reason: POOL_NOT_DIRECT });
      else if (directAddresses.has(p.address!)) paths.push({ kind: 'direct', target: { host: p.address!, port: hostPort } });
      else unavailable.push({ kind: 'direct', reason: notANodeHost(p.address!) });
    } else if (p.kind === 'ssh') {
      if (sshListenPort === undefined) unavailable.push({ kind: 'ssh', reason: 'no SSH session key yet' });
      else paths.push({ kind: 'ssh', target: sshTarget(sshListenPort) });
    } else if (wireguard) paths.push({ kind: 'wireguard', target: wireguard });
    else unavailable.push({ kind: p.kind, reason: WIREGUARD_SINGLE_HOST });
  }
  return { paths, unavailable };
}

export const POOL_NOT_DIRECT = "a direct path reaches one node's host; a pool's tunnel takes wireguard or ssh";

export const notANodeHost = (address: string) => `${address} is not the address of a node host (TUNNEL_DIRECT_ADDRESSES)`;

/** What a tenant's spec may not ask of this edge, each with its field. */
export function specProblems(spec: TunnelSpec, directAddresses: ReadonlySet<string>): string[] {
  const problems: string[] = [];
  if ((spec.nodeId === undefined) === (spec.poolId === undefined)) problems.push('nodeId: a tunnel names a node or a pool (poolId), exactly one');
  spec.paths.forEach((p, i) => {
    if (p.kind !== 'direct') return;
    if (spec.poolId !== undefined) problems.push(`paths.${i}.kind: ${POOL_NOT_DIRECT}`);
    else if (!directAddresses.has(p.address!)) problems.push(`paths.${i}.address: ${notANodeHost(p.address!)}`);
  });
  return problems;
}

/**
 * Where the node's side dials: the node's published port, or each node of a pool that publishes
 * it (a sleeping node's port is the activator's, which wakes it).
 */
export interface NodeRoute {
  targets: Target[];
  /** The node's host port, for a direct path; a node's tunnel only. */
  hostPort: number | undefined;
  /** A pool's: its nodes change under one session (a splicer on the node's side picks one per connection). */
  balanced: boolean;
}

export function nodeRoute(port: PublishedPort): NodeRoute {
  return { targets: [nodeTarget(port)], hostPort: port.hostPort, balanced: false };
}

/**
 * The pool's route, or why it has none: an app pool, and a port its spec or one of its nodes
 * publishes. Targets in a stable order, so the same nodes read twice are the same route.
 */
export function poolRoute(pool: PoolView, nodes: readonly NodeView[], containerPort: number): NodeRoute | string {
  if (pool.spec.kind !== 'app') return `pool ${pool.poolId} is an exit pool; a tunnel takes an app pool's port`;
  const mine = nodes.filter((n) => n.poolId === pool.poolId && n.status !== 'removed');
  const published = new Set([...(pool.spec.ports ?? []).map((p) => p.containerPort), ...mine.flatMap((n) => n.ports.map((p) => p.containerPort))]);
  if (!published.has(containerPort)) return `the pool publishes ${[...published].sort((a, b) => a - b).join(', ') || 'no port'}, not ${containerPort}`;
  const targets = mine.flatMap((n) => n.ports.filter((p) => p.containerPort === containerPort).map(nodeTarget));
  targets.sort((a, b) => a.host.localeCompare(b.host) || a.port - b.port);
  return { targets, hostPort: undefined, balanced: true };
}

export function sameRoute(a: NodeRoute, b: NodeRoute): boolean {
  return a.hostPort === b.hostPort && a.balanced === b.balanced && sameTargets(a.targets, b.targets);
}

export function sameTargets(a: readonly Target[], b: readonly Target[]): boolean {
  return a.length === b.length && a.every((t, i) => t.host === b[i]!.host && t.port === b[i]!.port);
}

interface PortSettings {
  TUNNEL_ROLE: 'single' | 'edge' | 'node';
  TUNNEL_HOST_ID?: string | undefined;
  TUNNEL_EDGE_HOST: string;
  TUNNEL_SSH_HOST: string;
  TUNNEL_SSH_PUBLIC_HOST?: string | undefined;
  TUNNEL_WG_ENDPOINT?: string | undefined;
  TUNNEL_PORT_MIN: number;
  TUNNEL_PORT_MAX: number;
  TUNNEL_SSH_PORT: number;
  TUNNEL_SSH_FORWARD_MIN: number;
  TUNNEL_SSH_FORWARD_MAX: number;
  TUNNEL_DIRECT_ADDRESSES: string;
  TUNNEL_PUBLISH_ADDRESSES?: string | undefined;
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
  for (const a of directAddressList(c.TUNNEL_PUBLISH_ADDRESSES ?? '')) if (!isIPv4(a)) problems.push(`TUNNEL_PUBLISH_ADDRESSES: ${JSON.stringify(a)} is not an IPv4 address`);
  if (c.TUNNEL_ROLE !== 'single' && !c.TUNNEL_HOST_ID?.match(/^[a-z0-9][a-z0-9-]{0,62}$/))
    problems.push(`TUNNEL_HOST_ID: required with TUNNEL_ROLE=${c.TUNNEL_ROLE}: the node host's id, lower-case letters, digits and "-"`);
  if (c.TUNNEL_ROLE === 'edge') {
    // What node hosts dial must be an address they can reach, not a wildcard or this host's loopback.
    const unreachable = (a: string) => a === '0.0.0.0' || a === '::' || a.startsWith('127.') || a === 'localhost';
    if (!c.TUNNEL_SSH_PUBLIC_HOST && unreachable(c.TUNNEL_SSH_HOST))
      problems.push(`TUNNEL_SSH_HOST: node hosts cannot reach the edge's sshd at ${c.TUNNEL_SSH_HOST}; set an address they reach (or TUNNEL_SSH_PUBLIC_HOST)`);
    if (!c.TUNNEL_WG_ENDPOINT && unreachable(c.TUNNEL_EDGE_HOST))
      problems.push(`TUNNEL_WG_ENDPOINT: required when TUNNEL_EDGE_HOST (${c.TUNNEL_EDGE_HOST}) is not an address node hosts reach`);
  }
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
