import { isIPv4, isIPv6 } from 'node:net';

// Addresses as numbers, so a source check is a few comparisons: IPv4 as a number, IPv6 as a
// bigint. An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, what a dual-stack socket reports
// for an IPv4 client) is its IPv4 address, so one rule covers a client however it arrived.

export type Ip = { readonly family: 4; readonly value: number } | { readonly family: 6; readonly value: bigint };
/** An inclusive range of addresses of one family. */
export type IpRange = { readonly family: 4; readonly lo: number; readonly hi: number } | { readonly family: 6; readonly lo: bigint; readonly hi: bigint };

function v4Value(s: string): number {
  const parts = s.split('.');
  return (((Number(parts[0]) << 24) >>> 0) + (Number(parts[1]) << 16) + (Number(parts[2]) << 8) + Number(parts[3])) >>> 0;
}

/** The value of a valid IPv6 literal (isIPv6 said so). */
function v6Value(s: string): bigint {
  let text = s;
  // An embedded IPv4 tail (`::ffff:1.2.3.4`) is the last two groups.
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    const v4 = v4Value(text.slice(lastColon + 1));
    text = `${text.slice(0, lastColon + 1)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const [head = '', rest] = text.split('::') as [string, string | undefined];
  const groups = (part: string) => (part === '' ? [] : part.split(':').map((g) => Number.parseInt(g, 16)));
  const left = groups(head);
  const right = rest === undefined ? [] : groups(rest);
  const all = rest === undefined ? left : [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  let value = 0n;
  for (const g of all) value = (value << 16n) | BigInt(g);
  return value;
}

/**
 * A dotted-quad IPv4 address's value, or -1 when `text` is not exactly one (no leading zeros,
 * as isIPv4 has it). By hand because it runs for each connection a policy judges by address:
 * isIPv4's regular expression and a split cost a third of such a decision.
 */
function quickV4(text: string): number {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || dots === 3) return -1;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return -1;
      octet = octet * 10 + (c - 48);
      if (++digits > 3 || octet > 255) return -1;
    } else return -1;
  }
  if (dots !== 3 || digits === 0) return -1;
  return value * 256 + octet;
}

/** The address of an IP literal (a zone, `%eth0`, is dropped), or null when it is not one. */
export function parseIp(text: string): Ip | null {
  const v4 = quickV4(text);
  if (v4 >= 0) return { family: 4, value: v4 };
  const s = text.includes('%') ? text.slice(0, text.indexOf('%')) : text;
  if (!isIPv6(s)) return null;
  const value = v6Value(s);
  if (value >> 32n === 0xffffn) return { family: 4, value: Number(value & 0xffffffffn) };
  return { family: 6, value };
}

/**
 * The range of an IP literal or a CIDR (`10.0.0.0/8`, `fd00::/8`), or a reason it is not one.
 * A CIDR with host bits set is refused: `10.1.2.3/8` is more likely a mistake than `10.0.0.0/8`.
 */
export function parseCidr(text: string): IpRange | string {
  const slash = text.indexOf('/');
  const addrText = slash < 0 ? text : text.slice(0, slash);
  if (addrText.includes('%')) return 'a zone (%) has no place in a policy';
  const ip = isIPv4(addrText) ? ({ family: 4, value: v4Value(addrText) } as const) : isIPv6(addrText) ? ({ family: 6, value: v6Value(addrText) } as const) : null;
  if (!ip) return `"${addrText}" is not an IPv4 or IPv6 address`;
  const bits = ip.family === 4 ? 32 : 128;
  let len = bits;
  if (slash >= 0) {
    const lenText = text.slice(slash + 1);
    if (!/^[0-9]{1,3}$/.test(lenText) || Number(lenText) > bits) return `the prefix length must be 0-${bits}`;
    len = Number(lenText);
  }
  if (ip.family === 4) {
    const size = 2 ** (32 - len);
    const lo = Math.floor(ip.value / size) * size;
    if (lo !== ip.value) return `host bits set: did you mean ${formatV4(lo)}/${len}?`;
    return { family: 4, lo, hi: lo + size - 1 };
  }
  const hostMask = (1n << BigInt(128 - len)) - 1n;
  if ((ip.value & hostMask) !== 0n) return `host bits set after the first ${len}`;
  // An IPv4-mapped range is the IPv4 range, as parseIp maps the addresses.
  if (len >= 96 && ip.value >> 32n === 0xffffn) {
    const lo = Number(ip.value & 0xffffffffn);
    return { family: 4, lo, hi: lo + 2 ** (128 - len) - 1 };
  }
  return { family: 6, lo: ip.value, hi: ip.value | hostMask };
}

export function inRange(ip: Ip, r: IpRange): boolean {
  return ip.family === r.family && ip.value >= r.lo && ip.value <= r.hi;
}

function formatV4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** The one address of a range of one address, or null. */
export function singleAddress(r: IpRange): string | null {
  if (r.lo !== r.hi) return null;
  if (r.family === 4) return formatV4(r.lo);
  const v = r.lo as bigint;
  const groups: string[] = [];
  for (let i = 7; i >= 0; i--) groups.push(((v >> BigInt(i * 16)) & 0xffffn).toString(16));
  return groups.join(':');
}
