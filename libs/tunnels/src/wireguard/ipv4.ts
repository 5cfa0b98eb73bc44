// IPv4 only: the link addresses come from a private range the operator configures, and the
// networks routed over a link are the node host's container networks, both IPv4 here.

/** An IPv4 network: its first address as a number and its prefix length. */
export interface Ipv4Network {
  readonly base: number;
  readonly prefix: number;
}

const QUAD = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** A dotted quad's value, or null when `text` is not exactly one. */
export function ipv4Value(text: string): number | null {
  if (!QUAD.test(text)) return null;
  return text.split('.').reduce((v, octet) => v * 256 + Number(octet), 0);
}

export function ipv4Text(value: number): string {
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join('.');
}

function mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/**
 * `10.99.0.0/24` → its network, or a reason it is not one. Host bits set (`10.99.0.7/24`) are
 * refused: in an allowed-ips list that is more likely a mistake than meant.
 */
export function parseIpv4Network(text: string): Ipv4Network | string {
  const [addr = '', bits, extra] = text.split('/');
  const value = ipv4Value(addr);
  if (value === null || bits === undefined || extra !== undefined || !/^\d{1,2}$/.test(bits)) return `"${text}" is not an IPv4 network (a.b.c.d/prefix)`;
  const prefix = Number(bits);
  if (prefix > 32) return `"${text}" has a prefix length outside 0-32`;
  if ((value & mask(prefix)) >>> 0 !== value) return `"${text}" has host bits set (the network is ${ipv4Text((value & mask(prefix)) >>> 0)}/${prefix})`;
  return { base: value, prefix };
}

export function networkContains(network: Ipv4Network, address: number): boolean {
  return (address & mask(network.prefix)) >>> 0 === network.base;
}

/** The number of addresses in the network. */
export function networkSize(network: Ipv4Network): number {
  return 2 ** (32 - network.prefix);
}
