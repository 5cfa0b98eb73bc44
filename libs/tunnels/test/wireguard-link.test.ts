import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdtemp, readFile, rm, stat, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { bringUpLink, createKeyFile, rotateNodeKey, type CommandHost, type KeyFile, type WireGuardLink } from '../src/index.js';

// The commands a link runs, against a fake host: which tool is asked what, in which order,
// and that a private key never shows up in a command line or an environment. The real tools
// run in tests/integration/tunnel-wireguard.test.ts.

const PRIVATE = '+LAsp2O/Dypt1Ag+9WIk3MYEY4pcoIxFnPdpQJDp9VE=';
const PUBLIC = 'iqhcHvTIbg8QN+oPHgatzEJpUWHo0oTiYvdKf1Q6Vzg=';
const PEER_OLD = 'NI2xd3+DDPv3bsOE7bktzszgq+grBwCifT0Cb/yJrRI=';
const PEER_NEW = '5qyEy37KzPLSpAeraNjFObFI7eNU1mE8FvPYBH3M8nw=';
const KEY: KeyFile = { publicKey: PUBLIC, privateKeyFile: '/state/sywg0a1b2c-1.key' };
const CONFIG = { interfaceName: 'sywg0a1b2c', range: '10.99.0.0/24', address: '10.99.0.1', listenPort: 51820, stateDir: '/state' };

type Answer = string | Error;

interface FakeHost extends CommandHost {
  calls: Array<{ line: string; input?: string }>;
  spawned: Array<{ line: string; env: NodeJS.ProcessEnv | undefined; proc: FakeProcess }>;
  lines(): string[];
}

/** A spawned command's child as far as the lib looks at it: output, exit, kill. */
class FakeProcess extends EventEmitter {
  readonly pid = 4242;
  readonly stdout = new EventEmitter();
  readonly stderr = new EventEmitter();
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  stopped = false;

  /** Ends it on its own, having printed `output`. */
  exit(output: string): void {
    this.stderr.emit('data', Buffer.from(output));
    this.exitCode = 1;
    this.emit('exit', 1, null);
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): boolean {
    this.stopped = true;
    this.signalCode = signal;
    this.emit('exit', null, signal);
    return true;
  }
}

/** A host that answers each command line with `answer` (an Error rejects). */
function fakeHost(answer: (line: string, host: FakeHost) => Answer): FakeHost {
  const host: FakeHost = {
    calls: [],
    spawned: [],
    lines: () => host.calls.map((c) => c.line),
    exec: async (command, args, input) => {
      const line = [command, ...args].join(' ');
      host.calls.push({ line, ...(input === undefined ? {} : { input }) });
      const a = answer(line, host);
      if (a instanceof Error) throw a;
      return a;
    },
    spawn: (command, args, env) => {
      const proc = new FakeProcess();
      host.spawned.push({ line: [command, ...args].join(' '), env, proc });
      return { pid: proc.pid, child: proc as unknown as ChildProcess };
    },
  };
  return host;
}

const refused = (what = 'refused') => new Error(what);
const dump = (...peers: string[]) => [[PRIVATE, PUBLIC, '51820', 'off'].join('\t'), ...peers].join('\n');
const peerLine = (key: string, allowed: string, keepalive = 'off') => [key, '(none)', '10.77.0.2:51820', allowed, '0', '0', '0', keepalive].join('\t');

let hosts: FakeHost[] = [];
afterEach(() => {
  // Whatever a test did, no private key went into a command line or an environment.
  for (const r of hosts) {
    for (const c of r.calls) expect(c.line).not.toContain(PRIVATE);
    for (const s of r.spawned) expect(JSON.stringify(s.env)).not.toContain(PRIVATE);
  }
  hosts = [];
});
function track(r: FakeHost): FakeHost {
  hosts.push(r);
  return r;
}

/** Nothing runs yet, the kernel has no WireGuard, and wireguard-go answers on its third probe. */
function userspaceHost(extra: (line: string) => Answer | undefined = () => undefined): FakeHost {
  let probes = 0;
  return track(
    fakeHost((line, r) => {
      const own = extra(line);
      if (own !== undefined) return own;
      if (line === 'wg show sywg0a1b2c listen-port') return r.spawned.length > 0 && ++probes >= 3 ? '51820\n' : refused('Unable to access interface: No such file or directory');
      if (line === 'ip link show dev sywg0a1b2c') return refused('Device "sywg0a1b2c" does not exist.');
      if (line.includes('type wireguard')) return refused('Error: Unknown device type.');
      return '';
    }),
  );
}

describe('bringUpLink', () => {
  it('falls back to wireguard-go when the kernel has no WireGuard, waits for its control socket, then configures it', async () => {
    const host = userspaceHost();
    const link = await bringUpLink({ host, config: CONFIG, key: KEY });
    expect({ mode: link.mode, pid: link.pid, address: link.address, name: link.name }).toEqual({ mode: 'userspace', pid: 4242, address: '10.99.0.1', name: 'sywg0a1b2c' });
    expect(host.spawned.map((s) => s.line)).toEqual(['wireguard-go -f sywg0a1b2c']);
    expect(Object.keys(host.spawned[0]!.env!).sort()).toEqual(['LOG_LEVEL', 'PATH', 'WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD']);
    expect(host.spawned[0]!.env!['WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD']).toBe('1');
    expect(host.lines()).toEqual([
      'wg show sywg0a1b2c listen-port',
      'ip link show dev sywg0a1b2c',
      'ip link add dev sywg0a1b2c type wireguard',
      'wg show sywg0a1b2c listen-port',
      'wg show sywg0a1b2c listen-port',
      'wg show sywg0a1b2c listen-port',
      'wg set sywg0a1b2c private-key /state/sywg0a1b2c-1.key listen-port 51820',
      'ip address add 10.99.0.1/32 dev sywg0a1b2c',
      'ip link set dev sywg0a1b2c up',
    ]);
  });

  it('uses the kernel interface when it can be made, with no wireguard-go', async () => {
    const host = userspaceHost((line) => (line.includes('type wireguard') ? '' : undefined));
    const link = await bringUpLink({ host, config: CONFIG, key: KEY });
    expect({ mode: link.mode, pid: link.pid, spawned: host.spawned.length }).toEqual({ mode: 'kernel', pid: undefined, spawned: 0 });
  });

  it('refuses a name whose control socket already answers (another namespace’s wireguard-go)', async () => {
    const host = userspaceHost((line) => (line === 'wg show sywg0a1b2c listen-port' ? '51820\n' : undefined));
    await expect(bringUpLink({ host, config: CONFIG, key: KEY })).rejects.toThrow('a WireGuard interface sywg0a1b2c already runs on this machine');
    expect(host.spawned).toEqual([]);
  });

  it('reports wireguard-go exiting before its socket appears, with what it printed', async () => {
    const host = track(
      fakeHost((line, r) => {
        if (line.includes('type wireguard') || line.startsWith('wg show') || line.startsWith('ip link show')) {
          r.spawned[0]?.proc.exit('ERROR: (sywg0a1b2c) 2026/12/07 Failed to create TUN device: no such file or directory');
          return refused();
        }
        return '';
      }),
    );
    await expect(bringUpLink({ host, config: CONFIG, key: KEY })).rejects.toThrow(
      'wireguard-go sywg0a1b2c exited: ERROR: (sywg0a1b2c) 2026/12/07 Failed to create TUN device: no such file or directory',
    );
  });

  it('ends wireguard-go again when configuring the interface fails', async () => {
    const host = userspaceHost((line) => (line.startsWith('ip address add') ? refused('RTNETLINK answers: Permission denied') : undefined));
    await expect(bringUpLink({ host, config: CONFIG, key: KEY })).rejects.toThrow('RTNETLINK answers: Permission denied');
    expect(host.spawned[0]!.proc.stopped).toBe(true);
  });

  it('refuses a bad configuration before running anything', async () => {
    const host = userspaceHost();
    await expect(bringUpLink({ host, config: { ...CONFIG, address: '10.98.0.1' }, key: KEY })).rejects.toThrow(
      'invalid WireGuard configuration: address: 10.98.0.1 is outside the range 10.99.0.0/24',
    );
    expect(host.calls).toEqual([]);
  });
});

describe('a link’s peers', () => {
  async function upWith(peers: () => string[]): Promise<{ host: FakeHost; link: WireGuardLink; from: number }> {
    const host = userspaceHost((line) => (line === 'wg show sywg0a1b2c dump' ? dump(...peers()) : undefined));
    const link = await bringUpLink({ host, config: CONFIG, key: KEY });
    return { host, link, from: host.calls.length };
  }

  it('routes a new peer’s allowed IPs through the interface from the link address', async () => {
    const { host, link, from } = await upWith(() => []);
    await link.setPeer({ publicKey: PEER_OLD, endpoint: '10.77.0.2:51820', allowedIps: ['10.99.0.2/32', '10.78.0.0/24'], persistentKeepaliveSec: 25 });
    expect(host.lines().slice(from)).toEqual([
      'wg show sywg0a1b2c dump',
      `wg set sywg0a1b2c peer ${PEER_OLD} endpoint 10.77.0.2:51820 allowed-ips 10.99.0.2/32,10.78.0.0/24 persistent-keepalive 25`,
      'ip route replace 10.99.0.2/32 dev sywg0a1b2c src 10.99.0.1',
      'ip route replace 10.78.0.0/24 dev sywg0a1b2c src 10.99.0.1',
    ]);
  });

  it('replaces a peer in one `wg set`, new key first, and drops the routes only the old one had', async () => {
    const { host, link, from } = await upWith(() => [peerLine(PEER_OLD, '10.99.0.2/32,10.78.0.0/24,10.79.0.0/24'), peerLine(PEER_NEW, '(none)')]);
    await link.replacePeer(PEER_OLD, { publicKey: PEER_NEW, endpoint: '10.77.0.2:51820', allowedIps: ['10.99.0.2/32', '10.78.0.0/24'] });
    expect(host.lines().slice(from)).toEqual([
      'wg show sywg0a1b2c dump',
      `wg set sywg0a1b2c peer ${PEER_NEW} endpoint 10.77.0.2:51820 allowed-ips 10.99.0.2/32,10.78.0.0/24 persistent-keepalive off peer ${PEER_OLD} remove`,
      'ip route replace 10.99.0.2/32 dev sywg0a1b2c src 10.99.0.1',
      'ip route replace 10.78.0.0/24 dev sywg0a1b2c src 10.99.0.1',
      'ip route delete 10.79.0.0/24 dev sywg0a1b2c',
    ]);
  });

  it('removes a peer and its routes', async () => {
    const { host, link, from } = await upWith(() => [peerLine(PEER_OLD, '10.99.0.2/32,10.78.0.0/24')]);
    await link.removePeer(PEER_OLD);
    expect(host.lines().slice(from)).toEqual([
      'wg show sywg0a1b2c dump',
      `wg set sywg0a1b2c peer ${PEER_OLD} remove`,
      'ip route delete 10.99.0.2/32 dev sywg0a1b2c',
      'ip route delete 10.78.0.0/24 dev sywg0a1b2c',
    ]);
  });

  it('switches the private key by file and makes every peer handshake at once, keeping its keepalive', async () => {
    const { host, link, from } = await upWith(() => [peerLine(PEER_OLD, '10.99.0.1/32', '25'), peerLine(PEER_NEW, '(none)')]);
    const next = { publicKey: PEER_NEW, privateKeyFile: '/state/sywg0a1b2c-2.key' };
    expect(await link.usePrivateKey(next)).toEqual(KEY);
    expect(link.key).toEqual(next);
    expect(host.lines().slice(from)).toEqual([
      'wg show sywg0a1b2c dump',
      [
        'wg set sywg0a1b2c private-key /state/sywg0a1b2c-2.key',
        `peer ${PEER_OLD} persistent-keepalive off peer ${PEER_OLD} persistent-keepalive 25`,
        `peer ${PEER_NEW} persistent-keepalive 1 peer ${PEER_NEW} persistent-keepalive off`,
      ].join(' '),
    ]);
  });

  it('takes the interface down by ending wireguard-go, once, and refuses changes afterwards', async () => {
    const { host, link, from } = await upWith(() => []);
    await link.down();
    await link.down();
    expect(host.spawned[0]!.proc.stopped).toBe(true);
    expect(host.lines().slice(from)).toEqual(['ip link show dev sywg0a1b2c']);
    await expect(link.setPeer({ publicKey: PEER_OLD, allowedIps: [] })).rejects.toThrow('WireGuard interface sywg0a1b2c is down');
  });
});

describe('createKeyFile', () => {
  const dirs: string[] = [];
  afterEach(async () => {
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });
  const wgKeys = () =>
    track(
      fakeHost((line) => {
        if (line === 'wg genkey') return `${PRIVATE}\n`;
        if (line === 'wg pubkey') return `${PUBLIC}\n`;
        return refused();
      }),
    );

  it('writes the private key to a new 0600 file in a 0700 dir, giving it to `wg pubkey` on stdin only', async () => {
    const base = await mkdtemp(join(tmpdir(), 'sy-wgkeys-'));
    dirs.push(base);
    const wg = wgKeys();
    const stateDir = join(base, 'state');
    const key = await createKeyFile(stateDir, 'sywg0a1b2c', wg);
    expect(key.publicKey).toBe(PUBLIC);
    expect(key.privateKeyFile).toMatch(new RegExp(`^${stateDir}/sywg0a1b2c-[0-9a-f]{8}\\.key$`));
    expect(await readFile(key.privateKeyFile, 'utf8')).toBe(`${PRIVATE}\n`);
    expect((await stat(key.privateKeyFile)).mode & 0o777).toBe(0o600);
    expect((await stat(stateDir)).mode & 0o777).toBe(0o700);
    expect(wg.calls).toEqual([{ line: 'wg genkey' }, { line: 'wg pubkey', input: `${PRIVATE}\n` }]);
    // A second key for the same interface (a rotation) is a second file.
    const next = await createKeyFile(stateDir, 'sywg0a1b2c', wg);
    expect(next.privateKeyFile).not.toBe(key.privateKeyFile);
  });

  it('refuses a state dir others can open', async () => {
    const base = await mkdtemp(join(tmpdir(), 'sy-wgkeys-'));
    dirs.push(base);
    const open = join(base, 'open');
    await mkdir(open, { mode: 0o755 });
    await expect(createKeyFile(open, 'sywg0a1b2c', wgKeys())).rejects.toThrow(`state dir ${open} has mode 755`);
  });
});

describe('rotateNodeKey', () => {
  const dirs: string[] = [];
  afterEach(async () => {
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });
  it('refuses an edge peer entry that is not the node’s current key, before changing anything', async () => {
    const [edgeHost, nodeHost] = [userspaceHost(), userspaceHost()];
    const edge = await bringUpLink({ host: edgeHost, config: CONFIG, key: KEY });
    const node = await bringUpLink({ host: nodeHost, config: { ...CONFIG, address: '10.99.0.2' }, key: { ...KEY, publicKey: PEER_NEW } });
    const [edgeFrom, nodeFrom] = [edgeHost.calls.length, nodeHost.calls.length];
    await expect(rotateNodeKey({ node, edge, edgePeer: { publicKey: PEER_OLD, allowedIps: ['10.99.0.2/32'] } })).rejects.toThrow(
      `the edge's peer entry (${PEER_OLD}) is not the node's current key (${PEER_NEW})`,
    );
    expect([edgeHost.calls.length, nodeHost.calls.length]).toEqual([edgeFrom, nodeFrom]);
  });

  it('puts the node back on its previous key when the edge cannot take the new one, and removes the new one', async () => {
    const base = await mkdtemp(join(tmpdir(), 'sy-wgrot-'));
    dirs.push(base);
    const stateDir = join(base, 'state');
    // The edge fails the step that moves its routes to the new key.
    const edgeHost = userspaceHost((line) => {
      if (line.includes(`peer ${PEER_OLD} remove`)) return refused('Operation not permitted');
      if (line === 'wg show sywg0a1b2c dump') return dump(peerLine(PEER_OLD, '10.99.0.2/32'), peerLine(PEER_NEW, '(none)'));
      return undefined;
    });
    const nodeHost = userspaceHost((line) => {
      if (line === 'wg genkey') return `${PRIVATE}\n`;
      if (line === 'wg pubkey') return `${PEER_NEW}\n`;
      if (line === 'wg show sywg0a1b2c dump') return dump(peerLine(PUBLIC, '10.99.0.1/32', '25'));
      return undefined;
    });
    const edge = await bringUpLink({ host: edgeHost, config: CONFIG, key: KEY });
    const oldKey: KeyFile = { publicKey: PEER_OLD, privateKeyFile: join(base, 'old.key') };
    const node = await bringUpLink({ host: nodeHost, config: { ...CONFIG, address: '10.99.0.2', stateDir }, key: oldKey });
    await expect(rotateNodeKey({ node, edge, edgePeer: { publicKey: PEER_OLD, allowedIps: ['10.99.0.2/32'] }, handshakeTimeoutMs: 50 })).rejects.toThrow(
      "the edge refused the node's new key, so the node is back on its previous one: ",
    );
    expect(node.key).toEqual(oldKey);
    // Brought up on the old key, switched to the new one, switched back.
    const keyFiles = nodeHost
      .lines()
      .filter((l) => l.startsWith('wg set sywg0a1b2c private-key '))
      .map((l) => l.split(' ')[4]!);
    expect(keyFiles).toHaveLength(3);
    expect([keyFiles[0], keyFiles[2]]).toEqual([oldKey.privateKeyFile, oldKey.privateKeyFile]);
    expect(keyFiles[1]).toMatch(new RegExp(`^${stateDir}/`));
    // The extra peer the edge accepted for the new key is gone again, and so is the new key's file.
    expect(edgeHost.lines()).toContain(`wg set sywg0a1b2c peer ${PEER_NEW} remove`);
    await expect(stat(keyFiles[1]!)).rejects.toThrow('ENOENT');
  });
});
