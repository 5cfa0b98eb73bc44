// The edge sshd's own configuration: a tunnel-only server. Rendered from typed input so a test can
// read every line, and checked by `sshd -t` before it runs.

export interface SshdConfigInput {
  listenAddress: string;
  port: number;
  hostKeyPath: string;
  pidFile: string;
  /** Absolute path of the AuthorizedKeysCommand; see `unsafeCommandPath` for where it may live. */
  authorizedKeysCommand: string;
  /** Literal arguments before sshd's own (`%u %k %t`), e.g. the key source's socket. */
  authorizedKeysCommandArgs: readonly string[];
  /** The account the command runs as: one that does nothing else. */
  commandUser: string;
  /** The one account tunnels log in as. */
  tunnelUser: string;
  /** sshd drops a node whose keep-alives go unanswered after interval × count seconds, freeing its port. */
  clientAliveIntervalSec: number;
  clientAliveCountMax: number;
  /** Unauthenticated connections allowed at once (MaxStartups). */
  maxStartups: number;
  loginGraceTimeSec: number;
}

export const SSHD_DEFAULTS = {
  clientAliveIntervalSec: 15,
  clientAliveCountMax: 3,
  maxStartups: 20,
  loginGraceTimeSec: 20,
} as const;

// A token with whitespace, quotes or `%` would be split or expanded by sshd.
const PLAIN_TOKEN = /^[A-Za-z0-9_./:@+=,-]+$/;
const USER = /^[a-z_][a-z0-9_-]{0,31}$/;

function token(name: string, value: string): string {
  if (!PLAIN_TOKEN.test(value)) throw new Error(`${name}: only letters, digits and _./:@+=,- are allowed in sshd_config here: ${JSON.stringify(value)}`);
  return value;
}

function absolute(name: string, value: string): string {
  if (!value.startsWith('/')) throw new Error(`${name} must be an absolute path: ${value}`);
  return token(name, value);
}

function count(name: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min) throw new Error(`${name} must be an integer >= ${min}: ${value}`);
  return value;
}

function user(name: string, value: string): string {
  if (!USER.test(value)) throw new Error(`${name} is not a plain user name: ${value}`);
  return value;
}

export function renderSshdConfig(input: SshdConfigInput): string {
  const port = count('port', input.port, 1);
  if (port > 65535) throw new Error(`port out of range: ${port}`);
  const command = [
    absolute('authorizedKeysCommand', input.authorizedKeysCommand),
    ...input.authorizedKeysCommandArgs.map((a) => token('authorizedKeysCommandArgs', a)),
    '%u',
    '%k',
    '%t',
  ];
  return [
    '# Written by Switchyard tunnel-manager: an sshd for SSH reverse tunnels only.',
    `Port ${port}`,
    `ListenAddress ${token('listenAddress', input.listenAddress)}`,
    `HostKey ${absolute('hostKeyPath', input.hostKeyPath)}`,
    `PidFile ${absolute('pidFile', input.pidFile)}`,
    // Keys only, and only those Switchyard vouches for now: no password, no files in home directories.
    'AuthenticationMethods publickey',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'HostbasedAuthentication no',
    'PermitEmptyPasswords no',
    'PermitRootLogin no',
    // PAM would add nothing for a key-only login and is not configured for this sshd.
    'UsePAM no',
    'AuthorizedKeysFile none',
    `AuthorizedKeysCommand ${command.join(' ')}`,
    `AuthorizedKeysCommandUser ${user('commandUser', input.commandUser)}`,
    `AllowUsers ${user('tunnelUser', input.tunnelUser)}`,
    // Remote forwards to the edge's loopback, nothing else: the edge forwarder dials 127.0.0.1:<port>.
    'AllowTcpForwarding remote',
    'GatewayPorts no',
    'PermitOpen none',
    'AllowStreamLocalForwarding no',
    'PermitTunnel no',
    'AllowAgentForwarding no',
    'X11Forwarding no',
    'PermitTTY no',
    'PermitUserRC no',
    'PermitUserEnvironment no',
    // 0 refuses every shell, command and subsystem while forwarding still works (`ssh -N`).
    'MaxSessions 0',
    `MaxStartups ${count('maxStartups', input.maxStartups, 1)}`,
    `LoginGraceTime ${count('loginGraceTimeSec', input.loginGraceTimeSec, 1)}`,
    `ClientAliveInterval ${count('clientAliveIntervalSec', input.clientAliveIntervalSec, 1)}`,
    `ClientAliveCountMax ${count('clientAliveCountMax', input.clientAliveCountMax, 1)}`,
    'UseDNS no',
    'PrintMotd no',
    'Banner none',
    // VERBOSE logs each accepted key's fingerprint: who opened which session.
    'LogLevel VERBOSE',
    '',
  ].join('\n');
}

/** One directory (or the command file) on the way from `/` to the AuthorizedKeysCommand. */
export interface PathEntry {
  path: string;
  uid: number;
  mode: number;
}

/**
 * Why sshd would refuse to run the AuthorizedKeysCommand, or undefined: sshd requires the file
 * and every directory above it to be owned by root and not writable by group or others (else
 * another local user could swap the command that decides who logs in). sshd only says so in
 * its log, per login; checking before start turns a silent refusal of every key into an error.
 * /tmp fails this (mode 1777), so the edge's directory cannot live under it.
 */
export function unsafeCommandPath(entries: readonly PathEntry[]): string | undefined {
  for (const e of entries) {
    if (e.uid !== 0) return `${e.path} is owned by uid ${e.uid}, not root`;
    if ((e.mode & 0o022) !== 0) return `${e.path} is writable by group or others (mode ${(e.mode & 0o7777).toString(8)})`;
  }
  return undefined;
}

/** The file and every directory above it, innermost first. */
export function pathChain(file: string): string[] {
  const chain = [file];
  let p = file;
  while (p !== '/') {
    p = p.slice(0, p.lastIndexOf('/')) || '/';
    chain.push(p);
  }
  return chain;
}
