// Tunnels: the pieces tunnel-manager puts together on an edge and on a node's host. The edge
// forwarder picks a healthy path per connection; WireGuard links and SSH reverse tunnels are
// the paths it manages, each driven through the field's own tools (wireguard-go, wg, sshd, ssh).

// SSH paths: where the tools run (a host, or a network namespace of a test).
export { localHost, type CommandHost, type SpawnedCommand } from './ssh/command-host.js';
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
// SSH paths, the node: the ssh client's command line and the session supervisor.
export { sshClientArgs, knownHostsLine, classifySshLine, type SshClientInput, type ReverseForward, type SshLine } from './ssh/ssh-client.js';
export { backoffDelay, DEFAULT_BACKOFF, type BackoffPolicy } from './ssh/backoff.js';
export { ReverseTunnel, REVERSE_TUNNEL_DEFAULTS, type ReverseTunnelOptions, type ReverseTunnelState, type ReverseTunnelStatus } from './ssh/reverse-tunnel.js';
