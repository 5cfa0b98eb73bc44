import { readFile } from 'node:fs/promises';
import { compatCountry } from './compat/countries.js';

/** Lower-case country code → the VPN server hostnames a node of that country may be asked to use. */
export type ServerCatalog = ReadonlyMap<string, readonly string[]>;

/**
 * Used without VPN_SERVERS_FILE: a few countries so the catalog endpoints and /api/countries
 * answer something on a fresh install. The names are placeholders (`.vpn.example`), not a
 * provider's servers; a deployment lists its provider's hostnames in VPN_SERVERS_FILE.
 */
export const DEFAULT_SERVERS: Readonly<Record<string, readonly string[]>> = {
  us: ['us-east-1.vpn.example', 'us-west-1.vpn.example'],
  gb: ['gb-london-1.vpn.example'],
  de: ['de-frankfurt-1.vpn.example'],
  nl: ['nl-amsterdam-1.vpn.example'],
  jp: ['jp-tokyo-1.vpn.example'],
  ie: ['ie-dublin-1.vpn.example'],
};

export const HOSTNAME = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** Checks a catalog object; every problem is named with its country and position. */
export function parseServerCatalog(value: unknown): ServerCatalog {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('expected a JSON object of country code → array of hostnames');
  const problems: string[] = [];
  const catalog = new Map<string, string[]>();
  for (const [key, servers] of Object.entries(value)) {
    // The VPN Exit Controller's own server lists say `uk`; it is GB's entry here.
    const country = compatCountry(key);
    if (!country) problems.push(`"${key}" is not an ISO 3166-1 alpha-2 country code`);
    if (!Array.isArray(servers)) {
      problems.push(`${key}: expected an array of hostnames`);
      continue;
    }
    servers.forEach((s: unknown, i) => {
      if (typeof s !== 'string' || !HOSTNAME.test(s)) problems.push(`${key}[${i}]: expected a hostname, got ${JSON.stringify(s)}`);
    });
    const code = country?.iso ?? key.toLowerCase();
    catalog.set(code, [...(catalog.get(code) ?? []), ...(servers as string[])]);
  }
  if (problems.length) throw new Error(problems.join('; '));
  return catalog;
}

export async function loadServerCatalog(file: string | undefined): Promise<ServerCatalog> {
  if (!file) return parseServerCatalog(DEFAULT_SERVERS);
  const text = await readFile(file, 'utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new Error(`invalid JSON: ${(err as Error).message}`);
  }
  return parseServerCatalog(parsed);
}
