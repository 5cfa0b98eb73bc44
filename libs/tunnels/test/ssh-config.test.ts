import { describe, expect, it } from 'vitest';
import { knownHostsLine, pathChain, renderSshdConfig, type SshdConfigInput, sshClientArgs, unsafeCommandPath } from '../src/index.js';

const input: SshdConfigInput = {
  listenAddress: '10.77.0.1',
  port: 2222,
  hostKeyPath: '/var/lib/switchyard/ssh-edge/host_key',
  pidFile: '/var/lib/switchyard/ssh-edge/sshd.pid',
  authorizedKeysCommand: '/var/lib/switchyard/ssh-edge/bin/authorized-keys',
  authorizedKeysCommandArgs: ['/var/lib/switchyard/ssh-edge/keys.sock'],
  commandUser: 'switchyard-keys',
  tunnelUser: 'switchyard-tunnel',
  clientAliveIntervalSec: 15,
  clientAliveCountMax: 3,
  maxStartups: 20,
  loginGraceTimeSec: 20,
};

function directives(config: string): Map<string, string> {
  const lines = config.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
  const map = new Map<string, string>();
  for (const l of lines) {
    const [key, ...rest] = l.split(' ');
    expect(map.has(key!), `${key} given twice`).toBe(false);
    map.set(key!, rest.join(' '));
  }
  return map;
}

describe('sshd_config of the edge', () => {
  it('is a tunnel-only server: keys from the command, remote forwards only, no sessions', () => {
    const d = directives(renderSshdConfig(input));
    expect(Object.fromEntries(d)).toMatchObject({
      Port: '2222',
      ListenAddress: '10.77.0.1',
      HostKey: input.hostKeyPath,
      PidFile: input.pidFile,
      PasswordAuthentication: 'no',
      KbdInteractiveAuthentication: 'no',
      PubkeyAuthentication: 'yes',
      AuthenticationMethods: 'publickey',
      AuthorizedKeysFile: 'none',
      AuthorizedKeysCommand: '/var/lib/switchyard/ssh-edge/bin/authorized-keys /var/lib/switchyard/ssh-edge/keys.sock %u %k %t',
      AuthorizedKeysCommandUser: 'switchyard-keys',
      AllowUsers: 'switchyard-tunnel',
      AllowTcpForwarding: 'remote',
      GatewayPorts: 'no',
      PermitOpen: 'none',
      PermitTTY: 'no',
      X11Forwarding: 'no',
      AllowAgentForwarding: 'no',
      MaxSessions: '0',
      ClientAliveInterval: '15',
      ClientAliveCountMax: '3',
      LogLevel: 'VERBOSE',
    });
  });

  it('refuses values sshd would split, expand or misread', () => {
    expect(() => renderSshdConfig({ ...input, authorizedKeysCommand: '/var/lib/with space/cmd' })).toThrow(/authorizedKeysCommand/);
    expect(() => renderSshdConfig({ ...input, authorizedKeysCommandArgs: ['%h'] })).toThrow(/authorizedKeysCommandArgs/);
    expect(() => renderSshdConfig({ ...input, authorizedKeysCommand: 'bin/authorized-keys' })).toThrow(/absolute/);
    expect(() => renderSshdConfig({ ...input, tunnelUser: 'a b' })).toThrow(/tunnelUser/);
    expect(() => renderSshdConfig({ ...input, port: 70000 })).toThrow(/port/);
    expect(() => renderSshdConfig({ ...input, clientAliveCountMax: 0 })).toThrow(/clientAliveCountMax/);
    expect(() => renderSshdConfig({ ...input, listenAddress: '10.77.0.1\nPasswordAuthentication yes' })).toThrow(/listenAddress/);
  });
});

describe("the AuthorizedKeysCommand's path, as sshd checks it", () => {
  it('walks from the file up to /', () => {
    expect(pathChain('/run/sy/bin/cmd')).toEqual(['/run/sy/bin/cmd', '/run/sy/bin', '/run/sy', '/run', '/']);
  });

  it('must be root-owned and not group- or world-writable at every level (so not under /tmp)', () => {
    const ok = [
      { path: '/run/sy/bin/cmd', uid: 0, mode: 0o100755 },
      { path: '/run/sy/bin', uid: 0, mode: 0o40755 },
      { path: '/', uid: 0, mode: 0o40755 },
    ];
    expect(unsafeCommandPath(ok)).toBeUndefined();
    expect(unsafeCommandPath([...ok, { path: '/tmp', uid: 0, mode: 0o41777 }])).toBe('/tmp is writable by group or others (mode 1777)');
    expect(unsafeCommandPath([{ path: '/home/dev/cmd', uid: 1000, mode: 0o100755 }])).toBe('/home/dev/cmd is owned by uid 1000, not root');
    expect(unsafeCommandPath([{ path: '/srv/cmd', uid: 0, mode: 0o100775 }])).toMatch(/group or others/);
  });
});

describe('the ssh client command line', () => {
  const args = sshClientArgs({
    edgeHost: '10.77.0.1',
    edgePort: 2222,
    user: 'switchyard-tunnel',
    identityPath: '/var/lib/switchyard/keys/t1.ssh.1',
    knownHostsPath: '/var/lib/switchyard/keys/edge.known_hosts',
    forward: { remotePort: 40001, targetHost: '10.78.0.2', targetPort: 8080 },
    serverAliveIntervalSec: 10,
    serverAliveCountMax: 3,
    connectTimeoutSec: 5,
  });
  const options = args.flatMap((a, i) => (args[i - 1] === '-o' ? [a] : []));

  it('pins the host key, uses only the given key, fails on a refused forward, and reads no config file', () => {
    expect(options).toEqual(
      expect.arrayContaining([
        'BatchMode=yes',
        'ExitOnForwardFailure=yes',
        'ServerAliveInterval=10',
        'ServerAliveCountMax=3',
        'StrictHostKeyChecking=yes',
        'UserKnownHostsFile=/var/lib/switchyard/keys/edge.known_hosts',
        'GlobalKnownHostsFile=/dev/null',
        'UpdateHostKeys=no',
        'IdentitiesOnly=yes',
      ]),
    );
    expect(args.slice(0, 5)).toEqual(['-v', '-N', '-T', '-F', 'none']);
    expect(args.slice(-5)).toEqual(['-p', '2222', '-R', '127.0.0.1:40001:10.78.0.2:8080', 'switchyard-tunnel@10.77.0.1']);
    expect(args[args.indexOf('-i') + 1]).toBe('/var/lib/switchyard/keys/t1.ssh.1');
  });

  it('writes the pinned key as a known_hosts line, with the port when it is not 22', () => {
    expect(knownHostsLine('10.77.0.1', 2222, 'ssh-ed25519 AAAAC3Nza switchyard-edge\n')).toBe('[10.77.0.1]:2222 ssh-ed25519 AAAAC3Nza\n');
    expect(knownHostsLine('edge.example', 22, 'ssh-ed25519 AAAAC3Nza')).toBe('edge.example ssh-ed25519 AAAAC3Nza\n');
  });
});
