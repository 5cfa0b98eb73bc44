import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  canonicalAddress,
  connectionInode,
  type EdgeSession,
  type KeyStatus,
  keyStatusAt,
  parseAcceptedLogin,
  parseProcNetTcp,
  parseStatStartTime,
  type SshKeyRecord,
  SshKeyStore,
  sessionsToCut,
  sshFingerprint,
} from '../src/index.js';

// The edge's session checks as data: sshd's log line, /proc's tables, the key's status and the
// decision, on text captured from the real sshd of the integration test and a fake clock.

const run = promisify(execFile);
const T0 = new Date('2026-03-01T12:00:00Z');
const HOUR = 3600_000;
const KEY_A = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHx1DzmPpYrV5pvZ7fE0uO3kB6H0X0Q7w8sV3aQ2P4bA t1.ssh.1';
const KEY_B = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB3m0p9q8r7s6t5u4v3w2x1y0zA9B8C7D6E5F4G3H2I1 t1.ssh.2';

const record = (over: Partial<SshKeyRecord> = {}): SshKeyRecord => ({
  publicKey: KEY_A,
  pathId: 'path-1',
  permitListenPort: 40001,
  validFrom: T0,
  validUntil: new Date(T0.getTime() + HOUR),
  ...over,
});

describe('key fingerprints', () => {
  it('are what ssh-keygen -lf prints: SHA256 of the key blob, base64 without padding', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sy-fp-'));
    try {
      for (const type of ['ed25519', 'ecdsa', 'rsa']) {
        const path = join(dir, type);
        await run('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', `c-${type}`, '-f', path]);
        const printed = (await run('ssh-keygen', ['-lf', `${path}.pub`])).stdout.split(' ')[1];
        const pub = (await readFile(`${path}.pub`, 'utf8')).trim();
        expect(printed).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
        expect(sshFingerprint(pub)).toBe(printed);
        // The comment is not part of the key.
        expect(sshFingerprint(pub.replace(`c-${type}`, 'other'))).toBe(printed);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("sshd's login line", () => {
  it('names the user, the connection and the key of a publickey login (as sshd -e writes it, with or without \\r)', () => {
    const line = 'Accepted publickey for switchyard-tunnel from 10.77.0.2 port 52278 ssh2: ED25519 SHA256:DMAypqgZYSEHRRF4jw1uizUwbynmRXl+WTQtWNv4QbY\r';
    expect(parseAcceptedLogin(line)).toEqual({
      user: 'switchyard-tunnel',
      address: '10.77.0.2',
      port: 52278,
      keyType: 'ED25519',
      fingerprint: 'SHA256:DMAypqgZYSEHRRF4jw1uizUwbynmRXl+WTQtWNv4QbY',
    });
    expect(parseAcceptedLogin('Accepted publickey for u from 2001:DB8::1 port 5 ssh2: RSA SHA256:abc')?.address).toBe('2001:db8:0:0:0:0:0:1');
  });

  it('ignores the lines that are not a completed login', () => {
    for (const line of [
      'Accepted key ED25519 SHA256:DMAypqgZYSEHRRF4jw1uizUwbynmRXl+WTQtWNv4QbY found at /run/x/bin/authorized-keys /run/x/keys.sock %u %k %t:1',
      'Postponed publickey for switchyard-tunnel from 10.77.0.2 port 52278 ssh2 [preauth]',
      'Failed publickey for switchyard-tunnel from 10.77.0.2 port 52280 ssh2: ED25519 SHA256:DMAypqgZYSEHRRF4jw1uizUwbynmRXl+WTQtWNv4QbY',
      'User child is on pid 10413',
      'Connection from 10.77.0.2 port 52278 on 10.77.0.1 port 2222 rdomain ""',
    ]) {
      expect(parseAcceptedLogin(line)).toBeUndefined();
    }
  });
});

describe('/proc tables', () => {
  // From the edge namespace of the integration test: sshd listening on 10.77.0.1:2222, one session
  // from 10.77.0.2:52278, and its forward listening on 127.0.0.1:40001.
  const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 01004D0A:08AE 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 56275 1 0000000012fe1a71 100 0 0 10 0
   1: 0100007F:9C41 00000000:0000 0A 00000000:00000000 00:00000000 00000000   999        0 56510 1 000000003202f33b 100 0 0 10 0
   2: 01004D0A:08AE 02004D0A:CC36 01 00000000:00000000 02:000AFC51 00000000     0        0 56300 3 00000000bbccd054 20 4 17 20 -1
`;

  it('net/tcp: addresses, ports, state and inode (little-endian host words)', () => {
    const sockets = parseProcNetTcp(TCP, 'LE');
    expect(sockets).toHaveLength(3);
    expect(sockets[1]).toEqual({ localAddress: '127.0.0.1', localPort: 40001, remoteAddress: '0.0.0.0', remotePort: 0, state: 10, inode: 56510 });
    expect(sockets[2]).toEqual({ localAddress: '10.77.0.1', localPort: 2222, remoteAddress: '10.77.0.2', remotePort: 52278, state: 1, inode: 56300 });
    expect(parseProcNetTcp(TCP.replace('01004D0A:08AE 02004D0A', '0A4D0001:08AE 0A4D0002'), 'BE')[2]!.remoteAddress).toBe('10.77.0.2');
  });

  it('net/tcp6: IPv6 and IPv4-mapped addresses come out as sshd would log them', () => {
    const tcp6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0000000000000000FFFF00000100007F:08AE 0000000000000000FFFF00000200007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 777 1 0 20 4 17 20 -1
   1: B80D0120000000000000000001000000:08AE B80D0120000000000000000002000000:1F91 01 00000000:00000000 00:00000000 00000000     0        0 778 1 0 20 4 17 20 -1
`;
    const s = parseProcNetTcp(tcp6, 'LE');
    expect(s.map((x) => [x.localAddress, x.remoteAddress, x.remotePort])).toEqual([
      ['127.0.0.1', '127.0.0.2', 8080],
      ['2001:db8:0:0:0:0:0:1', '2001:db8:0:0:0:0:0:2', 8081],
    ]);
    expect(canonicalAddress('::ffff:10.0.0.7')).toBe('10.0.0.7');
    expect(canonicalAddress('2001:db8::2')).toBe('2001:db8:0:0:0:0:0:2');
  });

  it("the connection's inode: established, to sshd's port, from the logged address and port only", () => {
    const sockets = parseProcNetTcp(TCP, 'LE');
    expect(connectionInode(sockets, 2222, { address: '10.77.0.2', port: 52278 })).toBe(56300);
    expect(connectionInode(sockets, 2222, { address: '10.77.0.2', port: 52279 })).toBeUndefined();
    expect(connectionInode(sockets, 2223, { address: '10.77.0.2', port: 52278 })).toBeUndefined();
    // The listening socket is never a session's.
    expect(connectionInode(sockets, 2222, { address: '0.0.0.0', port: 0 })).toBeUndefined();
  });

  it("stat's start time, whatever the command name holds", () => {
    expect(parseStatStartTime('13195 (cat) R 13192 13192 7171 0 -1 4194304 101 0 0 0 0 0 0 0 20 0 1 0 75683 3133440 355')).toBe(75683);
    expect(parseStatStartTime('42 (sshd: a) [priv]) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 99 1 1')).toBe(99);
    expect(parseStatStartTime('')).toBeUndefined();
  });
});

describe("a session key's status", () => {
  const fp = sshFingerprint(KEY_A);

  it('valid inside its validity, then expired, revoked from its revocation on, unknown when absent', () => {
    expect(keyStatusAt([record()], fp, T0)).toBe('valid');
    expect(keyStatusAt([record()], fp, new Date(T0.getTime() - 1))).toBe('not yet valid');
    expect(keyStatusAt([record()], fp, new Date(T0.getTime() + HOUR))).toBe('expired');
    const revoked = record({ revokedAt: new Date(T0.getTime() + 10) });
    expect(keyStatusAt([revoked], fp, new Date(T0.getTime() + 9))).toBe('valid');
    expect(keyStatusAt([revoked], fp, new Date(T0.getTime() + 10))).toBe('revoked');
    // Revoked says more than expired.
    expect(keyStatusAt([revoked], fp, new Date(T0.getTime() + 2 * HOUR))).toBe('revoked');
    expect(keyStatusAt([record({ publicKey: KEY_B })], fp, T0)).toBe('unknown key');
  });

  it('a store answers the same, following its puts, revocations and removals', () => {
    const store = new SshKeyStore('switchyard-tunnel');
    expect(store.keyStatus(fp, T0)).toBe('unknown key');
    store.put(record(), T0);
    expect(store.keyStatus(fp, T0)).toBe('valid');
    store.revoke(KEY_A, new Date(T0.getTime() + 1));
    expect(store.keyStatus(fp, new Date(T0.getTime() + 1))).toBe('revoked');
    store.remove(KEY_A);
    expect(store.keyStatus(fp, new Date(T0.getTime() + 1))).toBe('unknown key');
  });
});

describe('which sessions the edge ends', () => {
  const session = (pid: number, fingerprint: string, sinceMs: number): EdgeSession => ({
    pid,
    fingerprint,
    user: 'switchyard-tunnel',
    address: '10.77.0.2',
    port: 50000 + pid,
    since: new Date(T0.getTime() + sinceMs),
  });
  const statuses: Record<string, KeyStatus> = { 'SHA256:ok': 'valid', 'SHA256:rev': 'revoked', 'SHA256:exp': 'expired', 'SHA256:gone': 'unknown key' };
  const statusOf = (fp: string) => statuses[fp] ?? 'unknown key';
  const MAX = 10 * 60_000;

  it('those whose key is no longer valid, each with its reason, and nothing else', () => {
    const sessions = [session(1, 'SHA256:ok', 0), session(2, 'SHA256:rev', 0), session(3, 'SHA256:exp', 0), session(4, 'SHA256:gone', 0)];
    const cuts = sessionsToCut(sessions, statusOf, new Date(T0.getTime() + 1000), MAX);
    expect(cuts.map((c) => [c.session.pid, c.reason])).toEqual([
      [2, 'revoked'],
      [3, 'expired'],
      [4, 'unknown key'],
    ]);
  });

  it('a valid session once it reaches the age limit, on a fake clock; the key reason wins over age', () => {
    const sessions = [session(1, 'SHA256:ok', 0), session(2, 'SHA256:ok', 60_000), session(3, 'SHA256:rev', 0)];
    const at = (ms: number) => sessionsToCut(sessions, statusOf, new Date(T0.getTime() + ms), MAX).map((c) => [c.session.pid, c.reason]);
    expect(at(MAX - 1)).toEqual([[3, 'revoked']]);
    expect(at(MAX)).toEqual([
      [1, 'session too old'],
      [3, 'revoked'],
    ]);
    expect(at(MAX + 60_000)).toEqual([
      [1, 'session too old'],
      [2, 'session too old'],
      [3, 'revoked'],
    ]);
  });

  it('no sessions, no cuts', () => {
    expect(sessionsToCut([], statusOf, T0, MAX)).toEqual([]);
  });
});
