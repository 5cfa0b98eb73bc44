import { type Issue, TUNNEL_DEFAULTS, type TunnelSpec } from '@switchyard/contracts';

const OCTET = '(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])';
/** Four decimal octets without leading zeros: "010.0.0.1" would read as octal to some resolvers. */
export const IPV4_DOTTED_QUAD = new RegExp(`^${OCTET}(?:\\.${OCTET}){3}$`);

/**
 * What the schema cannot say about a tunnel: each path kind at most once, an address exactly on
 * `direct` paths, and, once the node is known, a port it publishes. Issues name the field as
 * the schema's do (`paths.1.kind`), so a client reads both the same way.
 */
export function tunnelSpecIssues(spec: TunnelSpec, published?: { of: string; ports: readonly number[] }): Issue[] {
  const issues: Issue[] = [];
  if (spec.nodeId !== undefined && spec.poolId !== undefined) issues.push({ path: 'poolId', message: 'a tunnel names a node or a pool, not both' });
  if (spec.nodeId === undefined && spec.poolId === undefined) issues.push({ path: 'nodeId', message: 'required, or poolId: the node (or app pool) whose port the tunnel exposes' });
  spec.paths.forEach((path, i) => {
    const first = spec.paths.findIndex((p) => p.kind === path.kind);
    if (first < i) issues.push({ path: `paths.${i}.kind`, message: `${path.kind} is already paths.${first}: each kind at most once` });
    if (path.kind === 'direct') {
      if (spec.poolId !== undefined) issues.push({ path: `paths.${i}.kind`, message: "a direct path reaches one node's host; a pool's tunnel takes wireguard or ssh" });
      if (path.address === undefined) issues.push({ path: `paths.${i}.address`, message: "required on a direct path: the node's host on the operator's network" });
      else if (!IPV4_DOTTED_QUAD.test(path.address)) issues.push({ path: `paths.${i}.address`, message: `"${path.address}" is not an IPv4 address (a.b.c.d)` });
    } else if (path.address !== undefined) {
      issues.push({ path: `paths.${i}.address`, message: `not allowed on the ${path.kind} path: tunnel-manager makes its own` });
    }
  });
  const { rotateEveryHours, keyLifetimeDays } = { ...TUNNEL_DEFAULTS, ...spec };
  if (keyLifetimeDays * 24 <= rotateEveryHours)
    issues.push({ path: 'keyLifetimeDays', message: `${keyLifetimeDays} days would expire keys before their rotation every ${rotateEveryHours} hours` });
  if (published) {
    const ports = [...new Set(published.ports)].sort((a, b) => a - b);
    if (!ports.includes(spec.port)) {
      const publishes = ports.length ? `it publishes ${ports.join(', ')}` : 'it publishes none now';
      issues.push({ path: 'port', message: `${spec.port} is not a published port of ${published.of}: ${publishes}` });
    }
  }
  return issues;
}
