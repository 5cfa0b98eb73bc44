import type { AclGate } from '@switchyard/service-kit';
import type { TrafficCounters } from '../counters.js';
import type { DestinationPolicy } from '../destinations.js';
import type { Router } from '../router.js';
import type { RouteNode } from '../table.js';

export interface DataPlaneConfig {
  readonly connectTimeoutMs: number;
  readonly handshakeTimeoutMs: number;
  readonly retries: number;
  /** Bound on an absolute-form request's wait for the node's first answer byte. */
  readonly firstByteTimeoutMs: number;
  /** After one side of a spliced connection ended, bound on the other direction. */
  readonly halfCloseTimeoutMs: number;
  /** No credential configured: serve every client unscoped instead of refusing them (development). */
  readonly openProxy: boolean;
  /** Which IP-literal targets a client may name. */
  readonly destinations: DestinationPolicy;
  /** Open proxy-port connections one client address may hold in this worker. */
  readonly maxConnectionsPerClient: number;
  /** A proxied connection with no byte either way for this long is closed. */
  readonly idleTimeoutMs: number;
  /** Bytes held from a client before its node answers; beyond them it is paused. */
  readonly maxBufferedBytes: number;
}

/** The credentials of the proxy ports (LB_PROXY_USERS and the tenants' proxy users). */
export interface CredentialCheck {
  /** Whether any credential exists now; none: every client is refused, or served unscoped when `openProxy`. */
  configured(): boolean;
  /** The tenant of a user name and password, or undefined when they match no credential; `client` is the peer's address. */
  verify(user: string, password: string, client: string): Promise<string | undefined>;
}

/** What the front ends need of their worker: routing, counters, bounds, and where to report a failed node. */
export interface DataPlane {
  readonly router: Router;
  readonly counters: TrafficCounters;
  readonly config: DataPlaneConfig;
  readonly credentials: CredentialCheck;
  /** The tenants' ACL policies, checked before a node is dialled; denials are counted per rule. */
  readonly acl: AclGate;
  /** A connection to a node failed (passive health signal). */
  connectFailed(node: RouteNode, error: string): void;
}
