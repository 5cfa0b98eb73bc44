// The edge side of a tunnel (issue 12): which path a new connection takes, and the forwarder
// that owns the tunnel's public port. Setting paths up (WireGuard, SSH) is tunnel-manager's.

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
