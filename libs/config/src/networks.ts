import { BlockList, isIP } from 'node:net';

/**
 * "10.1.0.0/16, fd00::/8" → a BlockList; a bare address counts as a single-address network.
 * Throws, naming the entry, for anything that is not an IP network: config schemas refine
 * with it, so a value that passed its schema parses.
 */
export function parseNetworks(value: string): BlockList {
  const list = new BlockList();
  for (const entry of value
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean)) {
    const [address, bits, extra] = entry.split('/');
    const family = isIP(address ?? '');
    if (family === 0 || extra !== undefined) throw new Error(`"${entry}" is not an IP network (address/prefix)`);
    const max = family === 4 ? 32 : 128;
    const prefix = bits === undefined ? max : /^\d{1,3}$/.test(bits) ? Number(bits) : Number.NaN;
    if (!(prefix >= 0 && prefix <= max)) throw new Error(`"${entry}" has a prefix length outside 0-${max}`);
    list.addSubnet(address!, prefix, family === 4 ? 'ipv4' : 'ipv6');
  }
  return list;
}

/** Whether `value` is a list parseNetworks takes. */
export function isNetworkList(value: string): boolean {
  try {
    parseNetworks(value);
    return true;
  } catch {
    return false;
  }
}
