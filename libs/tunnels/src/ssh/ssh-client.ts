// The OpenSSH client's side of a reverse tunnel as data: its command line, the pinned host key
// line, and what its stderr says. The supervisor only spawns and reads.

export interface ReverseForward {
  /** The port on the edge's loopback the forward listens on (the key's permitlisten). */
  remotePort: number;
  /** Where connections are sent on the node's side. */
  targetHost: string;
  targetPort: number;
}

export interface SshClientInput {
  edgeHost: string;
  edgePort: number;
  user: string;
  identityPath: string;
  /** A file holding only the edge's pinned host key (`knownHostsLine`). */
  knownHostsPath: string;
  forward: ReverseForward;
  /** ssh asks the edge every interval and gives up after count unanswered: the session's liveness. */
  serverAliveIntervalSec: number;
  serverAliveCountMax: number;
  connectTimeoutSec: number;
}

/**
 * `ssh` arguments for one session. `-F none` and every option given here keep ~/.ssh/config and
 * /etc/ssh/ssh_config of the node's host out of it; `-v` is what reports the forward's success
 * (the only reliable "up" seen from the node's side: the edge's loopback is not reachable from
 * here). Debug output carries key fingerprints and paths, never key material.
 */
export function sshClientArgs(input: SshClientInput): string[] {
  const { forward: f } = input;
  const options = [
    'BatchMode=yes',
    'ExitOnForwardFailure=yes',
    `ServerAliveInterval=${input.serverAliveIntervalSec}`,
    `ServerAliveCountMax=${input.serverAliveCountMax}`,
    `ConnectTimeout=${input.connectTimeoutSec}`,
    'StrictHostKeyChecking=yes',
    `UserKnownHostsFile=${input.knownHostsPath}`,
    'GlobalKnownHostsFile=/dev/null',
    // The pinned file stays as written: no learning of further host keys from the edge.
    'UpdateHostKeys=no',
    'IdentitiesOnly=yes',
    'IdentityAgent=none',
    'PasswordAuthentication=no',
    'KbdInteractiveAuthentication=no',
    'ControlMaster=no',
    'ControlPath=none',
    'ForwardAgent=no',
    'ForwardX11=no',
    'PermitLocalCommand=no',
  ];
  return [
    '-v',
    '-N',
    '-T',
    '-F',
    'none',
    ...options.flatMap((o) => ['-o', o]),
    '-i',
    input.identityPath,
    '-p',
    String(input.edgePort),
    '-R',
    `127.0.0.1:${f.remotePort}:${f.targetHost}:${f.targetPort}`,
    `${input.user}@${input.edgeHost}`,
  ];
}

/** The pinned host key as a known_hosts line (`[host]:port` form for a port other than 22). */
export function knownHostsLine(edgeHost: string, edgePort: number, hostPublicKey: string): string {
  const [type, key] = hostPublicKey.trim().split(/\s+/);
  if (!type || !key) throw new Error('host public key is empty');
  const name = edgePort === 22 ? edgeHost : `[${edgeHost}]:${edgePort}`;
  return `${name} ${type} ${key}\n`;
}

export type SshLine = { kind: 'forward-up'; remotePort: number } | { kind: 'reason'; text: string } | { kind: 'noise' };

const FORWARD_UP = /^debug1: remote forward success for: listen (?:[^:\s]+:)?(\d+),/;
// Said on every run, failed or not: no reason for anything.
const NOISE = [/^OpenSSH_/, /^Transferred: /, /^Bytes per second: /, /^Authenticated to /, /^debug\d: /, /^Killed by signal/];

/**
 * One line of `ssh -v` stderr: the forward being up, a line worth showing as the reason a session
 * ended ("Permission denied (publickey).", "Host key verification failed.", "Error: remote port
 * forwarding failed for listen port 40001", "connect to host … Connection refused"), or noise.
 */
export function classifySshLine(line: string): SshLine {
  const up = FORWARD_UP.exec(line);
  if (up) return { kind: 'forward-up', remotePort: Number(up[1]) };
  const text = line.trim();
  if (text === '' || NOISE.some((n) => n.test(text))) return { kind: 'noise' };
  return { kind: 'reason', text };
}
