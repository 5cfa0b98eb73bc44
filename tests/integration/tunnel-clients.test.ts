import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually, REDIS_IMAGE, REDIS_PORT, rejectionOf, SSHD_IMAGE, SSHD_PORT, SSHD_USER, TEST_CONTAINER_LINK } from '@switchyard/testkit';
import { type ForwarderProcess, type RigService, startTunnelRig, type TunnelRig } from '@switchyard/testkit/tunnels';
import { type ClientKey, generateClientKey } from '@switchyard/tunnels';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// Issue 12's real clients: the OpenSSH client and redis-cli, run in the edge's namespace as
// clients of the edge endpoint, reach an sshd and a Redis inside the node through the edge
// forwarder, first over WireGuard, then, with WireGuard's packets dropped, over the SSH
// reverse tunnels. Both servers are real containers sharing the node's address; each port has
// a forwarder of its own.

const INTERVAL_MS = 200;
// userspace wireguard-go on a loaded machine can take a few hundred ms to answer: no early switch.
const PROBE_TIMEOUT_MS = 1000;
const FALL = 2;
/** Long enough that no failback can happen while the SSH-path tests run. */
const HOLD_DOWN_MS = 120_000;
const FAILOVER_BOUND_MS = FALL * (INTERVAL_MS + PROBE_TIMEOUT_MS) + INTERVAL_MS + 1_000;
/** The name the sshd's host key is pinned under, whichever endpoint reaches it. */
const HOST_ALIAS = 'node-sshd';

/** The frames of a container's log as Docker sends them without a TTY: an 8-byte header each. */
function demux(raw: Buffer): string {
  let out = '';
  for (let at = 0; at + 8 <= raw.length; ) {
    const size = raw.readUInt32BE(at + 4);
    out += raw.subarray(at + 8, at + 8 + size).toString('utf8');
    at += 8 + size;
  }
  return out;
}

describe('real clients through the edge endpoint: ssh and redis-cli, over WireGuard and over SSH', () => {
  let rig: TunnelRig;
  let dir: string;
  let sshd: RigService;
  let redis: RigService;
  let sshForwarder: ForwarderProcess;
  let redisForwarder: ForwarderProcess;
  let clientKey: ClientKey;
  let knownHosts: string;
  let hostKey: string;

  /** The OpenSSH client in the edge's namespace, the sshd's host key pinned, no prompt of any kind. */
  const ssh = (command: string, knownHostsPath = knownHosts) =>
    rig.hosts.edge.exec('ssh', [
      '-F',
      'none',
      '-T',
      '-o',
      'BatchMode=yes',
      '-o',
      'StrictHostKeyChecking=yes',
      '-o',
      `UserKnownHostsFile=${knownHostsPath}`,
      '-o',
      'GlobalKnownHostsFile=/dev/null',
      '-o',
      `HostKeyAlias=${HOST_ALIAS}`,
      '-o',
      'IdentitiesOnly=yes',
      '-i',
      clientKey.privateKeyPath,
      '-o',
      'ConnectTimeout=5',
      '-p',
      String(sshForwarder.port),
      `${SSHD_USER}@${rig.hosts.edge.address}`,
      command,
    ]);
  const redisCli = (...args: string[]) => rig.hosts.edge.exec('redis-cli', ['-h', rig.hosts.edge.address, '-p', String(redisForwarder.port), ...args]);
  /** The connection as sshd saw it (SSH_CONNECTION): client address and port, its own address and port. */
  const sshClientAddress = async () => (await ssh('echo "$SSH_CONNECTION"')).trim().split(' ');
  /** The connection as Redis saw it (CLIENT INFO): client address, its own address and port. */
  const redisClientAddress = async () => /\baddr=([\d.]+):\d+ laddr=([\d.]+):(\d+)\b/.exec(await redisCli('CLIENT', 'INFO'))?.slice(1);
  const sshdLog = async () => demux((await sshd.container.logs({ stdout: true, stderr: true })) as unknown as Buffer);
  const switchesTo = (f: ForwarderProcess, to: string) => f.events.filter((e) => e.type === 'switch' && e.to === to);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sy-tunnel-clients-'));
    rig = await startTunnelRig();
    // The client's key is made where the client runs; only its public half goes to the node.
    clientKey = await generateClientKey(join(dir, 'client'), 'client', rig.hosts.edge);
    sshd = await rig.addService({ image: SSHD_IMAGE, port: SSHD_PORT, env: [`AUTHORIZED_KEY=${clientKey.publicKey}`] });
    redis = await rig.addService({ image: REDIS_IMAGE, port: REDIS_PORT });

    // The host key as the container printed it at its start: learned out of band, then pinned.
    const logs = await eventually(sshdLog, (l) => /^host key: ssh-ed25519 \S+/m.test(l), 10_000, "the sshd container's host key");
    hostKey = /^host key: (ssh-ed25519 \S+)/m.exec(logs)![1]!;
    knownHosts = join(dir, 'known_hosts');
    await writeFile(knownHosts, `${HOST_ALIAS} ${hostKey}\n`, { mode: 0o644 });

    const paths = (s: RigService) => [
      { kind: 'wireguard' as const, target: s.targets.wireguard },
      { kind: 'ssh' as const, target: s.targets.ssh },
    ];
    const options = { host: rig.hosts.edge.address, port: 0, intervalMs: INTERVAL_MS, probeTimeoutMs: PROBE_TIMEOUT_MS, fall: FALL, holdDownMs: HOLD_DOWN_MS };
    sshForwarder = await rig.startForwarder({ ...options, paths: paths(sshd) });
    redisForwarder = await rig.startForwarder({ ...options, paths: paths(redis) });
  }, 120_000);

  afterAll(async () => {
    await rig?.remove();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  describe('over WireGuard', () => {
    it('ssh runs a command in the node with the pinned host key and the client key, and sshd sees the edge’s WireGuard address', async () => {
      expect((await sshForwarder.state()).current).toBe('wireguard');
      const out = await ssh('echo "hello from $USER"; cat /etc/ssh/authorized_keys');
      expect(out).toBe(`hello from ${SSHD_USER}\n${clientKey.publicKey}\n`);
      expect(await sshClientAddress()).toEqual([rig.wireguard.edge.config.address, expect.stringMatching(/^\d+$/), TEST_CONTAINER_LINK.container, String(SSHD_PORT)]);
      // The private key never left the client's directory with anything wider than 0600.
      expect((await rig.hosts.edge.exec('stat', ['-c', '%a', clientKey.privateKeyPath])).trim()).toBe('600');
    });

    it('ssh refuses the node when another host key is pinned', async () => {
      const other = await generateClientKey(join(dir, 'other'), 'other', rig.hosts.edge);
      const wrong = join(dir, 'wrong.known_hosts');
      await writeFile(wrong, `${HOST_ALIAS} ${other.publicKey.split(' ').slice(0, 2).join(' ')}\n`, { mode: 0o644 });
      const logins = async () => (await sshdLog()).match(/Accepted publickey for /g)?.length ?? 0;
      const before = await logins();
      const err = String(await rejectionOf(ssh('true', wrong)));
      expect(err).toContain('REMOTE HOST IDENTIFICATION HAS CHANGED');
      expect(err).toContain('Host key verification failed');
      // The client gave up before it authenticated: no login reached sshd.
      expect(await logins()).toBe(before);
    });

    it('redis-cli: PING is answered PONG, and a SET is read back by a GET, from the edge’s WireGuard address', async () => {
      expect((await redisForwarder.state()).current).toBe('wireguard');
      expect(await redisCli('PING')).toBe('PONG\n');
      expect(await redisCli('SET', 'tunnel:wireguard', 'set over wireguard')).toBe('OK\n');
      expect(await redisCli('GET', 'tunnel:wireguard')).toBe('set over wireguard\n');
      expect(await redisClientAddress()).toEqual([rig.wireguard.edge.config.address, TEST_CONTAINER_LINK.container, String(REDIS_PORT)]);
    });
  });

  describe('over SSH, WireGuard broken', () => {
    beforeAll(async () => {
      const before = [switchesTo(sshForwarder, 'ssh').length, switchesTo(redisForwarder, 'ssh').length];
      await rig.breakWireGuard(true);
      for (const f of [sshForwarder, redisForwarder]) {
        await eventually(
          async () => (await f.state()).current,
          (c) => c === 'ssh',
          FAILOVER_BOUND_MS + 2_000,
          'the switch to ssh',
        );
      }
      expect([switchesTo(sshForwarder, 'ssh').length, switchesTo(redisForwarder, 'ssh').length]).toEqual(before.map((n) => n + 1));
    }, 30_000);

    it('both forwarders say why they switched', async () => {
      for (const f of [sshForwarder, redisForwarder]) {
        const [toSsh] = switchesTo(f, 'ssh');
        expect(toSsh).toMatchObject({ from: 'wireguard', to: 'ssh' });
        expect(toSsh!.type === 'switch' && toSsh!.reason).toMatch(/^switched to ssh: wireguard probe failed 2×/);
        expect((await f.state()).paths.map((p) => [p.kind, p.up])).toEqual([
          ['wireguard', false],
          ['ssh', true],
        ]);
      }
    });

    it('ssh runs a command in the node through the reverse tunnel, and sshd sees the node host’s address', async () => {
      const out = await ssh('echo "hello from $USER"; cat /etc/ssh/authorized_keys');
      expect(out).toBe(`hello from ${SSHD_USER}\n${clientKey.publicKey}\n`);
      // The reverse tunnel's ssh client on the node's host opens the connection to the container.
      expect(await sshClientAddress()).toEqual([TEST_CONTAINER_LINK.host, expect.stringMatching(/^\d+$/), TEST_CONTAINER_LINK.container, String(SSHD_PORT)]);
      expect((await sshForwarder.state()).current).toBe('ssh');
    });

    it('redis-cli: PING is answered PONG, a SET is read back by a GET, and the key set over WireGuard is still there', async () => {
      expect(await redisCli('PING')).toBe('PONG\n');
      expect(await redisCli('SET', 'tunnel:ssh', 'set over ssh')).toBe('OK\n');
      expect(await redisCli('GET', 'tunnel:ssh')).toBe('set over ssh\n');
      expect(await redisCli('GET', 'tunnel:wireguard')).toBe('set over wireguard\n');
      expect(await redisClientAddress()).toEqual([TEST_CONTAINER_LINK.host, TEST_CONTAINER_LINK.container, String(REDIS_PORT)]);
      expect((await redisForwarder.state()).current).toBe('ssh');
    });
  });
});
