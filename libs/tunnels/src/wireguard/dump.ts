// `wg show <if> dump`: one tab-separated line for the interface, then one per peer. Its first
// line starts with the interface's PRIVATE key and each peer line holds the preshared key, so
// the parser keeps neither, and no error it throws quotes a line (only its number and shape).

export interface WireGuardPeerState {
  publicKey: string;
  /** The peer's current `ip:port`, learnt or configured; null before either. */
  endpoint: string | null;
  allowedIps: string[];
  /** When the latest handshake completed; null when none has yet. */
  latestHandshakeAt: Date | null;
  rxBytes: number;
  txBytes: number;
  /** Seconds, or null when off. */
  persistentKeepaliveSec: number | null;
}

export interface WireGuardInterfaceState {
  publicKey: string | null;
  listenPort: number;
  fwmark: number | null;
  peers: WireGuardPeerState[];
}

const INTERFACE_FIELDS = 4; // private-key public-key listen-port fwmark
const PEER_FIELDS = 8; // public-key preshared-key endpoint allowed-ips latest-handshake rx tx keepalive

function count(text: string, line: number, what: string): number {
  if (!/^\d+$/.test(text)) throw new Error(`wg dump line ${line}: ${what} is not a number`);
  return Number(text);
}

/** wg prints a firewall mark as `0x…`. */
function hex(text: string, line: number, what: string): number {
  if (!/^0x[0-9a-f]{1,8}$/i.test(text)) throw new Error(`wg dump line ${line}: ${what} is not a hex number`);
  return Number.parseInt(text.slice(2), 16);
}

function none(text: string): string | null {
  return text === '(none)' ? null : text;
}

export function parseWgDump(text: string): WireGuardInterfaceState {
  const lines = text.split('\n').filter((l) => l.length > 0);
  const head = lines[0]?.split('\t');
  if (head?.length !== INTERFACE_FIELDS) throw new Error(`wg dump line 1: expected ${INTERFACE_FIELDS} fields, got ${head?.length ?? 0}`);
  const [, publicKey, listenPort, fwmark] = head as [string, string, string, string];
  const peers = lines.slice(1).map((line, i): WireGuardPeerState => {
    const n = i + 2;
    const f = line.split('\t');
    if (f.length !== PEER_FIELDS) throw new Error(`wg dump line ${n}: expected ${PEER_FIELDS} fields, got ${f.length}`);
    const [key, , endpoint, allowed, handshake, rx, tx, keepalive] = f as [string, string, string, string, string, string, string, string];
    const handshakeSec = count(handshake, n, 'latest-handshake');
    return {
      publicKey: key,
      endpoint: none(endpoint),
      allowedIps: allowed === '(none)' ? [] : allowed.split(','),
      latestHandshakeAt: handshakeSec === 0 ? null : new Date(handshakeSec * 1000),
      rxBytes: count(rx, n, 'transfer-rx'),
      txBytes: count(tx, n, 'transfer-tx'),
      persistentKeepaliveSec: keepalive === 'off' ? null : count(keepalive, n, 'persistent-keepalive'),
    };
  });
  return {
    publicKey: none(publicKey),
    listenPort: count(listenPort, 1, 'listen-port'),
    fwmark: fwmark === 'off' ? null : hex(fwmark, 1, 'fwmark'),
    peers,
  };
}
