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
export type { Forwarder, ForwarderState, PathState } from './forwarder.js';
export { FORWARDER_DEFAULTS, ForwarderOptionError } from './options.js';
export type { ForwarderEvent, ForwarderOptions, PathSpec } from './options.js';
