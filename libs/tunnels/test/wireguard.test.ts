import { describe, expect, it } from 'vitest';
import { checkLinkConfig, checkPeer, interfaceNameProblem, isWireGuardKey, linkAddress, parseWgDump, peerArgs, uniqueInterfaceName, WireGuardConfigError } from '../src/index.js';

// The pure parts of the WireGuard path: what `wg show dump` says, and which configurations are
// refused before any command runs. Keys below are throwaway pairs made by `wg genkey` for this file.

const PRIVATE = '+LAsp2O/Dypt1Ag+9WIk3MYEY4pcoIxFnPdpQJDp9VE=';
const PUBLIC = 'iqhcHvTIbg8QN+oPHgatzEJpUWHo0oTiYvdKf1Q6Vzg=';
const PEER_A = 'NI2xd3+DDPv3bsOE7bktzszgq+grBwCifT0Cb/yJrRI=';
const PEER_B = '5qyEy37KzPLSpAeraNjFObFI7eNU1mE8FvPYBH3M8nw=';
const PRESHARED = 'gIodtPSXuqMfIz3MASpQcx2EQKvJTGUb4JctSHw4vXo=';

const line = (...fields: string[]) => fields.join('\t');

describe('parseWgDump', () => {
  it('reads the interface and each peer: endpoint, allowed IPs, latest handshake, transfer, keepalive', () => {
    const dump = [
      line(PRIVATE, PUBLIC, '51820', 'off'),
      line(PEER_A, '(none)', '10.77.0.2:51820', '10.99.0.2/32,10.78.0.0/24', '1796673905', '180', '272', '5'),
      line(PEER_B, PRESHARED, '(none)', '(none)', '0', '0', '0', 'off'),
      '',
    ].join('\n');
    expect(parseWgDump(dump)).toEqual({
      publicKey: PUBLIC,
      listenPort: 51820,
      fwmark: null,
      peers: [
        {
          publicKey: PEER_A,
          endpoint: '10.77.0.2:51820',
          allowedIps: ['10.99.0.2/32', '10.78.0.0/24'],
          latestHandshakeAt: new Date(1796673905 * 1000),
          rxBytes: 180,
          txBytes: 272,
          persistentKeepaliveSec: 5,
        },
        { publicKey: PEER_B, endpoint: null, allowedIps: [], latestHandshakeAt: null, rxBytes: 0, txBytes: 0, persistentKeepaliveSec: null },
      ],
    });
  });

  it('keeps neither the private key nor a preshared key', () => {
    const dump = [line(PRIVATE, PUBLIC, '51820', '0x2a'), line(PEER_A, PRESHARED, '(none)', '(none)', '0', '0', '0', 'off')].join('\n');
    const parsed = parseWgDump(dump);
    expect(parsed.fwmark).toBe(42);
    expect(JSON.stringify(parsed)).not.toContain(PRIVATE);
    expect(JSON.stringify(parsed)).not.toContain(PRESHARED);
  });

  it('an interface with no key yet has a null public key and no peers', () => {
    expect(parseWgDump(`${line('(none)', '(none)', '0', 'off')}\n`)).toEqual({ publicKey: null, listenPort: 0, fwmark: null, peers: [] });
  });

  it('refuses a malformed dump without quoting it (the first line holds the private key)', () => {
    const bad = [
      '',
      line(PRIVATE, PUBLIC, '51820'),
      [line(PRIVATE, PUBLIC, '51820', 'off'), line(PEER_A, '(none)', '(none)', '(none)', 'soon', '0', '0', 'off')].join('\n'),
      [line(PRIVATE, PUBLIC, '51820', 'off'), line(PEER_A, PRIVATE)].join('\n'),
    ];
    const messages = bad.map((text) => {
      try {
        parseWgDump(text);
        return 'parsed';
      } catch (err) {
        return (err as Error).message;
      }
    });
    expect(messages).toEqual([
      'wg dump line 1: expected 4 fields, got 0',
      'wg dump line 1: expected 4 fields, got 3',
      'wg dump line 2: latest-handshake is not a number',
      'wg dump line 2: expected 8 fields, got 2',
    ]);
    for (const m of messages) expect(m).not.toContain(PRIVATE);
  });
});

describe('keys and interface names', () => {
  it('recognises a key as wg prints it, and nothing else', () => {
    expect([PUBLIC, PRIVATE, PEER_A].map(isWireGuardKey)).toEqual([true, true, true]);
    // Too short, a stray character, and a last character carrying bits a 32-byte key cannot have.
    const notKeys = [PUBLIC.slice(1), `${PUBLIC.slice(0, 10)}!${PUBLIC.slice(11)}`, `${PUBLIC.slice(0, 42)}B=`, ''];
    expect(notKeys.map(isWireGuardKey)).toEqual([false, false, false, false]);
  });

  it('makes unique names within Linux limits and refuses names that do not fit one', () => {
    const names = new Set(Array.from({ length: 50 }, () => uniqueInterfaceName()));
    expect(names.size).toBe(50);
    for (const n of names) expect(n).toMatch(/^sywg[0-9a-f]{6}$/);
    expect(interfaceNameProblem('sywg0123456789a')).toBeNull();
    expect(interfaceNameProblem('sywg0123456789ab')).toBe('must be 1-15 characters, got 16');
    expect(interfaceNameProblem('wg/0')).toBe('may hold only letters, digits, "_", "." and "-"');
    expect(interfaceNameProblem('..')).toBe('may hold only letters, digits, "_", "." and "-"');
    expect(() => uniqueInterfaceName('a-much-too-long')).toThrow(WireGuardConfigError);
  });
});

describe('linkAddress', () => {
  it('hands out host addresses of the range in order, never its network or broadcast address', () => {
    expect([1, 2, 254].map((i) => linkAddress('10.99.0.0/24', i))).toEqual(['10.99.0.1', '10.99.0.2', '10.99.0.254']);
    expect([1, 2].map((i) => linkAddress('10.99.0.8/31', i))).toEqual(['10.99.0.8', '10.99.0.9']);
    for (const i of [0, 255, 1.5]) expect(() => linkAddress('10.99.0.0/24', i)).toThrow(`${i} is outside 1-254, the host addresses of 10.99.0.0/24`);
    expect(() => linkAddress('10.99.0.1/24', 1)).toThrow('"10.99.0.1/24" has host bits set (the network is 10.99.0.0/24)');
  });
});

describe('checkLinkConfig', () => {
  const good = { interfaceName: 'sywg0a1b2c', range: '10.99.0.0/24', address: '10.99.0.1', listenPort: 51820, stateDir: '/var/lib/switchyard/wireguard' };

  it('accepts a complete configuration', () => {
    expect(checkLinkConfig(good)).toEqual([]);
  });

  it('names every field at fault', () => {
    expect(checkLinkConfig({ interfaceName: 'x'.repeat(16), range: '10.99.0.0/33', address: '10.99.0', listenPort: 0, stateDir: 'state' })).toEqual([
      { field: 'interfaceName', message: 'must be 1-15 characters, got 16' },
      { field: 'range', message: '"10.99.0.0/33" has a prefix length outside 0-32' },
      { field: 'address', message: '"10.99.0" is not an IPv4 address' },
      { field: 'listenPort', message: 'must be a port number 1-65535, got 0' },
      { field: 'stateDir', message: 'must be an absolute path, got "state"' },
    ]);
  });

  it('wants the address inside the range and not its network or broadcast address', () => {
    const fields = (address: string) => checkLinkConfig({ ...good, address });
    expect(fields('10.98.0.1')).toEqual([{ field: 'address', message: '10.98.0.1 is outside the range 10.99.0.0/24' }]);
    expect(fields('10.99.0.0')).toEqual([{ field: 'address', message: '10.99.0.0 is the network or broadcast address of 10.99.0.0/24' }]);
    expect(fields('10.99.0.255')).toEqual([{ field: 'address', message: '10.99.0.255 is the network or broadcast address of 10.99.0.0/24' }]);
  });
});

describe('checkPeer', () => {
  it('accepts a peer with an address or a host name endpoint, or none', () => {
    expect(checkPeer({ publicKey: PEER_A, endpoint: '10.77.0.2:51820', allowedIps: ['10.99.0.2/32', '10.78.0.0/24'], persistentKeepaliveSec: 25 })).toEqual([]);
    expect(checkPeer({ publicKey: PEER_A, endpoint: 'edge.example.net:51820', allowedIps: [] })).toEqual([]);
    expect(checkPeer({ publicKey: PEER_A, allowedIps: ['0.0.0.0/0'] })).toEqual([]);
  });

  it('names every field at fault', () => {
    expect(checkPeer({ publicKey: 'not-a-key', endpoint: '10.77.0.2', allowedIps: ['10.99.0.2/32', '10.78.0.1/24', 'fd00::/8'], persistentKeepaliveSec: -1 }, 'edgePeer')).toEqual([
      { field: 'edgePeer.publicKey', message: 'is not a WireGuard key (44 characters of base64)' },
      { field: 'edgePeer.endpoint', message: '"10.77.0.2" is not host:port' },
      { field: 'edgePeer.allowedIps[1]', message: '"10.78.0.1/24" has host bits set (the network is 10.78.0.0/24)' },
      { field: 'edgePeer.allowedIps[2]', message: '"fd00::/8" is not an IPv4 network (a.b.c.d/prefix)' },
      { field: 'edgePeer.persistentKeepaliveSec', message: 'must be 0-65535 seconds, got -1' },
    ]);
    expect(checkPeer({ publicKey: PEER_A, endpoint: '10.77.0.999:51820', allowedIps: [] })).toEqual([
      { field: 'peer.endpoint', message: '"10.77.0.999" is neither an IPv4 address nor a host name' },
    ]);
    expect(checkPeer({ publicKey: PEER_A, endpoint: 'edge:70000', allowedIps: [] })).toEqual([{ field: 'peer.endpoint', message: 'must be a port number 1-65535, got 70000' }]);
  });
});

describe('peerArgs', () => {
  it('spells a peer for `wg set`, clearing allowed IPs and keepalive when it has none', () => {
    expect(peerArgs({ publicKey: PEER_A, endpoint: '10.77.0.2:51820', allowedIps: ['10.99.0.2/32', '10.78.0.0/24'], persistentKeepaliveSec: 25 })).toEqual([
      'peer',
      PEER_A,
      'endpoint',
      '10.77.0.2:51820',
      'allowed-ips',
      '10.99.0.2/32,10.78.0.0/24',
      'persistent-keepalive',
      '25',
    ]);
    expect(peerArgs({ publicKey: PEER_A, allowedIps: [] })).toEqual(['peer', PEER_A, 'allowed-ips', '', 'persistent-keepalive', 'off']);
  });
});
