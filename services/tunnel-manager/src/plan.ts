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

export const WIREGUARD_SINGLE_HOST = "the node's host is this edge (single-host mode): a WireGuard link needs tunnel-manager on another host, which is not built yet";

/**
 * Where the edge dials each path of a tunnel: `direct` at its address and the node's host port,
 * `ssh` at the edge-loopback port its session forwards. A path that cannot run here is left out
 * of the forwarder, with the reason it is down.
 */
export function forwarderPaths(
  spec: TunnelSpec,
  hostPort: number,
  sshListenPort: number | undefined,
): { paths: PathSpec[]; unavailable: Array<{ kind: TunnelPathKind; reason: string }> } {
  const paths: PathSpec[] = [];
  const unavailable: Array<{ kind: TunnelPathKind; reason: string }> = [];
  for (const p of spec.paths) {
    if (p.kind === 'direct') paths.push({ kind: 'direct', target: { host: p.address!, port: hostPort } });
    else if (p.kind === 'ssh') {
      if (sshListenPort === undefined) unavailable.push({ kind: 'ssh', reason: 'no SSH session key yet' });
      else paths.push({ kind: 'ssh', target: sshTarget(sshListenPort) });
    } else unavailable.push({ kind: p.kind, reason: WIREGUARD_SINGLE_HOST });
  }
  return { paths, unavailable };
}

export const sshTarget = (listenPort: number): Target => ({ host: '127.0.0.1', port: listenPort });

export function nextRotation(rotatedAt: Date, spec: TunnelSpec): Date {
  return new Date(rotatedAt.getTime() + withTunnelDefaults(spec).rotateEveryHours * 3_600_000);
}

export function keyLifetimeMs(spec: TunnelSpec): number {
  return withTunnelDefaults(spec).keyLifetimeDays * 86_400_000;
}
