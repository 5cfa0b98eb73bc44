import { isIPv4 } from 'node:net';
import type { BalancingStrategy } from '@switchyard/contracts';
import { isKnownCountry } from '@switchyard/contracts';

export const STRATEGIES = ['round_robin', 'least_connections', 'weighted_latency', 'random', 'health_score'] as const satisfies readonly BalancingStrategy[];

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function entries(value: string): string[] {
  return value
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e.length > 0);
}

/** "JP=18001,US=18002" → port → country (upper case). */
export function parseCountryPorts(value: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const e of entries(value)) {
    const m = /^([A-Za-z]{2})=(\d{1,5})$/.exec(e);
    if (!m) throw new Error(`"${e}" is not COUNTRY=port`);
    const country = m[1]!.toUpperCase();
    const port = Number(m[2]);
    if (!isKnownCountry(country)) throw new Error(`"${country}" is not an ISO 3166-1 country code`);
    if (port < 1 || port > 65535) throw new Error(`port ${port} is out of range`);
    if (out.has(port)) throw new Error(`port ${port} is given twice`);
    out.set(port, country);
  }
  return out;
}

export interface ProxyUser {
  readonly password: string;
  readonly tenantId: string;
}

/** "alice:secret@<tenantId>,…" → user → password and tenant. Passwords may not hold ',' or '@'. */
export function parseProxyUsers(value: string): Map<string, ProxyUser> {
  const out = new Map<string, ProxyUser>();
  for (const e of entries(value)) {
    const m = /^([^:@,]+):([^@,]*)@(.+)$/.exec(e);
    if (!m) throw new Error(`"${e}" is not user:password@tenantId`);
    const [, user, password, tenantId] = m as unknown as [string, string, string, string];
    if (!UUID.test(tenantId)) throw new Error(`tenant of "${user}" is not a UUID`);
    if (/-(country|region|session)-/.test(`-${user}-`)) throw new Error(`user "${user}" contains a routing keyword`);
    out.set(user, { password, tenantId: tenantId.toLowerCase() });
  }
  return out;
}

export interface RegionRange {
  readonly network: number;
  readonly mask: number;
  readonly bits: number;
  readonly region: string;
}

function ipv4ToInt(ip: string): number {
  const parts = ip.split('.');
  return ((Number(parts[0]) << 24) | (Number(parts[1]) << 16) | (Number(parts[2]) << 8) | Number(parts[3])) >>> 0;
}

/** "10.0.0.0/8=eu-west,…" → ranges, most specific first. IPv4 only. */
export function parseClientRegions(value: string): RegionRange[] {
  const out: RegionRange[] = [];
  for (const e of entries(value)) {
    const m = /^([0-9.]+)\/(\d{1,2})=([A-Za-z0-9_.-]{1,64})$/.exec(e);
    if (!m || !isIPv4(m[1]!) || Number(m[2]) > 32) throw new Error(`"${e}" is not IPv4-CIDR=region`);
    const bits = Number(m[2]);
    const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    out.push({ network: (ipv4ToInt(m[1]!) & mask) >>> 0, mask, bits, region: m[3]! });
  }
  return out.sort((a, b) => b.bits - a.bits);
}

/** The region of a client address ("::ffff:10.1.2.3" counts as IPv4), or undefined. */
export function regionOf(ranges: readonly RegionRange[], address: string | undefined): string | undefined {
  if (!address || ranges.length === 0) return undefined;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  if (!isIPv4(v4)) return undefined;
  const ip = ipv4ToInt(v4);
  for (const r of ranges) if ((ip & r.mask) >>> 0 === r.network) return r.region;
  return undefined;
}
