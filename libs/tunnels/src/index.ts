// Tunnels: the pieces tunnel-manager puts together on an edge and on a node's host. The edge
// forwarder picks a healthy path per connection; WireGuard links and SSH reverse tunnels are
// the paths it manages, each driven through the field's own tools (wireguard-go, wg, sshd, ssh).

// Pure path health and choice, for the forwarder and for whoever shows or stores path state.
export { applyProbe, choosePath, DEFAULT_RISE_FALL, failureText, firstHealth, PATH_KINDS } from './paths.js';
export type { Choice, PathHealth, PathKind, ProbeResult, RiseFall } from './paths.js';
// One timed TCP connect, for checking a path outside a forwarder (a `direct` path's address).
export { probe } from './probe.js';
export type { Target } from './probe.js';
export { startForwarder } from './forwarder.js';
// The node host's end: a listener splicing to the node's port, or to a pool's nodes in turn.
export { startSpliceServer, type SpliceServer, type SpliceServerOptions } from './splice-server.js';
export type { Forwarder, ForwarderState, PathState } from './forwarder.js';
export { FORWARDER_DEFAULTS, ForwarderOptionError } from './options.js';
export type { ForwarderEvent, ForwarderOptions, PathSpec } from './options.js';

// Where the tools of both paths run: this machine, or a host of a test's own (a network namespace).
export { localHost, watch, type CommandHost, type SpawnedCommand, type WatchedProcess } from './host.js';

// WireGuard paths: keys, config checks, one link end per host, rotation.
export { generateKeyPair, createKeyFile, removeKeyFile, ensureStateDir, type KeyFile, type KeyPair } from './wireguard/keys.js';
export {
  MAX_INTERFACE_NAME,
  uniqueInterfaceName,
  interfaceNameProblem,
  linkAddress,
  isWireGuardKey,
  checkLinkConfig,
  checkPeer,
  assertValid,
  WireGuardConfigError,
  type ConfigProblem,
  type WireGuardLinkConfig,
  type WireGuardPeer,
} from './wireguard/config.js';
export { parseWgDump, type WireGuardInterfaceState, type WireGuardPeerState } from './wireguard/dump.js';
export { bringUpLink, peerArgs, WireGuardLink, type BringUpOptions, type WireGuardMode } from './wireguard/link.js';
export { rotateNodeKey, waitForHandshake, type NodeKeyRotation, type NodeKeyRotated } from './wireguard/rotation.js';

// SSH paths, the keys: records, the authorized_keys answer, rotation with overlap.
export {
  parsePublicKey,
  isValidAt,
  expiryTime,
  authorizedKeyLine,
  authorizedKeysAnswer,
  rotateRecords,
  type SshKeyRecord,
  type AuthorizedKeysQuery,
  type ParsedPublicKey,
  type RotationTimes,
} from './ssh/key-records.js';
export { generateClientKey, removeClientKey, type ClientKey } from './ssh/client-keys.js';
// SSH paths, the edge: its sshd and the key source its AuthorizedKeysCommand asks.
export { renderSshdConfig, unsafeCommandPath, pathChain, SSHD_DEFAULTS, type SshdConfigInput, type PathEntry } from './ssh/sshd-config.js';
export { SshKeyStore, serveAuthorizedKeys, type AuthorizedKeysSource, type KeySourceServer, type KeySourceOptions } from './ssh/key-source.js';
export { startSshEdge, SSHD_PATH, type SshEdge, type SshEdgeOptions } from './ssh/edge.js';
// SSH paths, the edge's own end to sessions whose key was revoked or expired, or that are too old.
export {
  sshFingerprint,
  parseAcceptedLogin,
  parseProcNetTcp,
  canonicalAddress,
  connectionInode,
  parseStatStartTime,
  keyStatusAt,
  sessionsToCut,
  TCP_ESTABLISHED,
  type AcceptedLogin,
  type TcpSocket,
  type KeyStatus,
  type KeyStatusSource,
  type EdgeSession,
  type CutReason,
  type SessionCut,
} from './ssh/sessions.js';
export { SessionWarden, SESSION_WARDEN_DEFAULTS, type SessionWardenOptions, type SessionCutEvent } from './ssh/session-warden.js';
// SSH paths, the node: the ssh client's command line and the session supervisor.
export { sshClientArgs, knownHostsLine, classifySshLine, type SshClientInput, type ReverseForward, type SshLine } from './ssh/ssh-client.js';
export { backoffDelay, DEFAULT_BACKOFF, type BackoffPolicy } from './ssh/backoff.js';
export { ReverseTunnel, REVERSE_TUNNEL_DEFAULTS, type ReverseTunnelOptions, type ReverseTunnelState, type ReverseTunnelStatus } from './ssh/reverse-tunnel.js';
// Waiting on another process, bounded in time.
export { pollUntil } from './poll.js';
// Processes by pid and start time, for whoever must end only processes of its own.
export { argvOf, childrenOf, isAlive, readProc, signal, startTimeOf } from './proc.js';
// A process a SIGKILLed parent left behind, found again by its pid file and ended if still ours.
export { recordProcess, forgetProcess, endLeftovers } from './pid-files.js';
