// Tunnels: the pieces tunnel-manager puts together on an edge and on a node's host. The edge
// forwarder picks a healthy path per connection; WireGuard links and SSH reverse tunnels are
// the paths it manages, each driven through the field's own tools (wireguard-go, wg, sshd, ssh).

// WireGuard paths: where commands run, keys, config checks, one link end per host, rotation.
export { localRunner, type ExecOptions, type HostExec, type HostProcess, type HostRunner, type HostSpawn } from './wireguard/runner.js';
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
