import { isIP } from 'node:net';
import { parseNetworks } from '@switchyard/config';

/**
 * Where an exit pool's client may not go: addresses that lead back into the host, the
 * Docker networks or the operator's LAN instead of out through the VPN. Only IP literals
 * are judged here; a host name is resolved by the node, which applies the same list to the
 * address it got (infra/images/exit-node, and gluetun's own firewall in production).
 */
export const DEFAULT_DENIED_NETWORKS: readonly string[] = Object.freeze([
  '0.0.0.0/8', // "this network"; 0.0.0.0 reaches the local host
  '10.0.0.0/8',
  '100.64.0.0/10', // carrier-grade NAT, also where mesh VPNs (Tailscale) put their peers
  '127.0.0.0/8',
  '169.254.0.0/16', // link-local, cloud metadata at 169.254.169.254
  '172.16.0.0/12', // includes Docker's default bridge networks
  '192.168.0.0/16',
  '224.0.0.0/4', // multicast
  '240.0.0.0/4', // reserved, and the broadcast address
  '::/128',
  '::1/128',
  'fc00::/7', // unique-local
  'fe80::/10', // link-local
  'ff00::/8', // multicast
]);

export interface DestinationPolicy {
  /** False for an IP literal in a denied network; host names are the node's to judge. */
  allows(host: string): boolean;
}

/**
 * `denied` is added to the defaults and always wins; `allowed` exempts networks from the
 * defaults only (development and tests reach targets on 127.0.0.1 through nodes on the host
 * network). BlockList matches IPv4-mapped IPv6 addresses (::ffff:127.0.0.1) by their IPv4 rules.
 */
export function destinationPolicy(opts: { denied?: string; allowed?: string } = {}): DestinationPolicy {
  const defaults = parseNetworks(DEFAULT_DENIED_NETWORKS.join(','));
  const denied = parseNetworks(opts.denied ?? '');
  const allowed = parseNetworks(opts.allowed ?? '');
  return {
    allows(host) {
      const family = isIP(host);
      if (family === 0) return true;
      const type = family === 4 ? 'ipv4' : 'ipv6';
      if (denied.check(host, type)) return false;
      return allowed.check(host, type) || !defaults.check(host, type);
    },
  };
}

const LABEL = /^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$/;

/**
 * A DNS name or a canonical IP literal: what may follow CONNECT in the line sent to a node.
 * A name whose last label is numeric is refused unless it is a dotted quad: resolvers read
 * "127.1", "0x7f.1" or "2130706433" as IPv4 addresses, which would walk around the policy.
 */
export function isValidHost(host: string): boolean {
  if (isIP(host) !== 0) return true;
  if (host.length > 253) return false;
  const labels = (host.endsWith('.') ? host.slice(0, -1) : host).split('.');
  if (!labels.every((l) => LABEL.test(l))) return false;
  const last = labels[labels.length - 1]!;
  return !/^(\d+|0x[0-9a-f]*)$/i.test(last);
}
