import Type, { type Static } from 'typebox';
import {
  BalancingStrategy,
  CountryCode,
  HealthStatus,
  NodeMetrics,
  PoolKind,
  HealthCheckSpec,
  Id,
  Name,
  NodeStatus,
  PoolSpec,
  PublishedPort,
  SleepPolicy,
  ActivatorMode,
  ActivityKind,
  SyncJobSpec,
  TenantId,
  Timestamp,
  TunnelPathKind,
  TunnelSpec,
} from './schemas.js';

const closed = { additionalProperties: false } as const;
const obj = <P extends Record<string, import('typebox').TSchema>>(props: P) => Type.Object(props, closed);
const nullable = <T extends import('typebox').TSchema>(t: T) => Type.Union([t, Type.Null()]);

// ---- commands: stored in the CMD stream, each subject consumed by exactly one service ----

export const PoolCreate = obj({ orderId: Id, tenantId: TenantId, poolId: Id, spec: PoolSpec });
export const PoolScale = obj({
  orderId: Id,
  tenantId: TenantId,
  poolId: Id,
  nodes: obj({ min: Type.Integer({ minimum: 0 }), max: Type.Integer({ minimum: 1 }) }),
});
export const PoolDelete = obj({
  orderId: Id,
  tenantId: TenantId,
  poolId: Id,
  keepVolumes: Type.Optional(Type.Boolean({ description: "keep the nodes' named volumes (removed with the pool by default)" })),
});
export const NodeCommand = obj({
  orderId: Type.Optional(Id),
  tenantId: TenantId,
  nodeId: Id,
  reason: Type.Optional(Type.String({ maxLength: 200 })),
});
/**
 * Adds one node, with an id chosen by the caller, to the tenant's exit pool of a country
 * (created with defaults if there is none): the VPN Exit Controller's "start a node in JP".
 */
export const NodeAdd = obj({
  orderId: Id,
  tenantId: TenantId,
  nodeId: Id,
  country: CountryCode,
  server: Type.Optional(Type.String({ minLength: 1, maxLength: 253, description: 'a VPN server hostname' })),
});
export const SleepPolicySet = obj({ orderId: Type.Optional(Id), tenantId: TenantId, poolId: Id, policy: SleepPolicy });
export const TunnelOpen = obj({ orderId: Id, tenantId: TenantId, tunnelId: Id, spec: TunnelSpec });
export const TunnelRef = obj({ orderId: Type.Optional(Id), tenantId: TenantId, tunnelId: Id });
export const SyncJobSchedule = obj({ orderId: Id, tenantId: TenantId, jobId: Id, spec: SyncJobSpec });
export const SyncJobRef = obj({ orderId: Type.Optional(Id), tenantId: TenantId, jobId: Id });

// ---- events: facts, published by the owner of the thing they describe ----

export const OrderProgress = obj({ orderId: Id, tenantId: TenantId, message: Type.String() });
export const OrderFulfilled = obj({
  orderId: Id,
  tenantId: TenantId,
  result: obj({
    poolId: Type.Optional(Id),
    nodeIds: Type.Optional(Type.Array(Id)),
    tunnelId: Type.Optional(Id),
    jobId: Type.Optional(Id),
  }),
});
export const OrderFailed = obj({ orderId: Id, tenantId: TenantId, reason: Type.String({ minLength: 1 }) });

export const PoolChanged = obj({
  tenantId: TenantId,
  poolId: Id,
  name: Name,
  spec: PoolSpec,
  at: Timestamp,
});
export const PoolDeleted = obj({ tenantId: TenantId, poolId: Id, at: Timestamp });

const nodeFacts = {
  tenantId: TenantId,
  poolId: Id,
  nodeId: Id,
  at: Timestamp,
};
export const NodeCreated = obj({
  ...nodeFacts,
  name: Type.String(),
  containerId: Type.String(),
  kind: Type.Union([Type.Literal('exit'), Type.Literal('app')]),
  country: Type.Optional(CountryCode),
  healthCheck: Type.Optional(HealthCheckSpec),
});
export const NodeStarted = obj({
  ...nodeFacts,
  containerId: Type.String(),
  ports: Type.Array(PublishedPort),
  startMs: Type.Number({ minimum: 0, description: 'docker start until the container is running' }),
  /** The image has a HEALTHCHECK of its own: the node is ready once Docker reports it healthy (node.evt.health). */
  healthcheck: Type.Optional(Type.Boolean()),
});
export const NodeStopped = obj({ ...nodeFacts, containerId: Type.String(), reason: Type.String() });
export const NodeDied = obj({
  ...nodeFacts,
  containerId: Type.String(),
  exitCode: Type.Integer(),
  oomKilled: Type.Boolean(),
});
export const NodeRemoved = obj({ ...nodeFacts, reason: Type.String() });
/** The node takes no new connections; it is removed once its connections end or drainSec passes. */
export const NodeDraining = obj({ ...nodeFacts, reason: Type.String() });
/** The container's own HEALTHCHECK changed state (Docker's health_status event). */
export const NodeHealthReported = obj({
  ...nodeFacts,
  containerId: Type.String(),
  status: Type.Union([Type.Literal('healthy'), Type.Literal('unhealthy'), Type.Literal('starting')]),
});
export const NodeStats = obj({ ...NodeMetrics.properties, ...nodeFacts });

export const HealthChanged = obj({
  ...nodeFacts,
  status: Type.Union([Type.Literal('healthy'), Type.Literal('unhealthy')]),
  score: Type.Integer({ minimum: 0, maximum: 100 }),
  reason: Type.String(),
});
export const SpeedTestResult = obj({
  tenantId: TenantId,
  nodeId: Id,
  downloadMbps: Type.Number({ minimum: 0 }),
  uploadMbps: Type.Number({ minimum: 0 }),
  latencyMs: Type.Number({ minimum: 0 }),
  at: Timestamp,
});
export const ConnectionFailed = obj({
  ...nodeFacts,
  error: Type.String(),
});

/** A node was put to sleep: `reason` says why ("idle for 600 s", "manual"); `idleSec` is 0 for a manual sleep. */
export const NodeSlept = obj({ ...nodeFacts, reason: Type.String(), idleSec: Type.Number({ minimum: 0 }) });
/** A pool's sleep policy changed; it applies from now on, without a restart of anything. */
export const SleepPolicyChanged = obj({ tenantId: TenantId, poolId: Id, policy: SleepPolicy, at: Timestamp });
export const NodeWoke = obj({
  ...nodeFacts,
  /** connection: a caught connection woke it; manual: it was started by a command and the activator stepped aside. */
  trigger: Type.Union([Type.Literal('connection'), Type.Literal('manual')]),
  mode: ActivatorMode,
  /** First caught connection (or the started event) until the node's port accepted. */
  readyMs: Type.Number({ minimum: 0 }),
  /** First caught connection until the node's first byte was forwarded to a client. */
  firstByteMs: Type.Optional(Type.Number({ minimum: 0 })),
  heldConnections: Type.Integer({ minimum: 0 }),
});
export const WakeFailed = obj({ ...nodeFacts, reason: Type.String(), heldConnections: Type.Integer({ minimum: 0 }) });

/** A pool's tunnel names its pool and no node. */
const tunnelFacts = { tenantId: TenantId, tunnelId: Id, nodeId: nullable(Id), poolId: Type.Optional(Id), name: Type.String(), at: Timestamp };
export const TunnelLifecycle = obj({
  ...tunnelFacts,
  endpoint: nullable(obj({ host: Type.String(), port: Type.Integer() })),
  reason: Type.Optional(Type.String()),
});
export const TunnelPathChanged = obj({ ...tunnelFacts, path: TunnelPathKind, reason: Type.String() });
export const TunnelSwitched = obj({ ...tunnelFacts, from: nullable(TunnelPathKind), to: nullable(TunnelPathKind), reason: Type.String() });
export const TunnelKeysChanged = obj({ ...tunnelFacts, paths: Type.Array(TunnelPathKind), reason: Type.String() });

export const TunnelPathView = obj({
  kind: TunnelPathKind,
  address: Type.Optional(Type.String()),
  state: Type.Union([Type.Literal('up'), Type.Literal('down'), Type.Literal('unknown')]),
  active: Type.Boolean({ description: 'new connections go over this path now' }),
  latencyMs: nullable(Type.Number({ description: 'the last good probe' })),
  reason: nullable(Type.String({ description: 'why it is down' })),
  changedAt: nullable(Timestamp),
  key: nullable(
    obj({
      fingerprint: Type.String({ description: 'the public half only' }),
      createdAt: Timestamp,
      expiresAt: Timestamp,
    }),
  ),
});
export const TunnelView = obj({
  tenantId: TenantId,
  tunnelId: Id,
  spec: TunnelSpec,
  status: Type.Union([Type.Literal('open'), Type.Literal('opening'), Type.Literal('failed')], {
    description: 'open: its endpoint takes connections; opening: being built (opened, rotated or rebuilt) now; failed: not running, see reason',
  }),
  reason: nullable(Type.String()),
  endpoint: nullable(obj({ host: Type.String(), port: Type.Integer() })),
  paths: Type.Array(TunnelPathView),
  createdAt: Timestamp,
  rotatedAt: Timestamp,
  nextRotationAt: Timestamp,
});
export const TunnelListRequest = obj({ tenantId: TenantId, tunnelId: Type.Optional(Id) });
export const TunnelListReply = obj({ tunnels: Type.Array(TunnelView) });

// ---- between tunnel-manager's roles: the edge and the agent on each node host ----

const HostId = Type.String({ minLength: 1, maxLength: 63, pattern: '^[a-z0-9][a-z0-9-]*$', description: 'a node host, as its agent names itself (TUNNEL_HOST_ID)' });
const WireGuardKey = Type.String({ pattern: '^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw480]=$', description: 'a Curve25519 public key, base64' });
const KeyId = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$', description: 'a key file name on the node host' });
const HostTarget = obj({ host: Type.String({ minLength: 1, maxLength: 253 }), port: Type.Integer({ minimum: 1, maximum: 65535 }) });
/** A node host's agent asks for what it should run, and hands over the public halves of its keys. */
export const TunnelHostPlanRequest = obj({
  hostId: HostId,
  /** Its WireGuard interface's public key; null before it has one. */
  wireguardPublicKey: nullable(WireGuardKey),
  /** The SSH keys it holds a private half of: public halves only. */
  sshKeys: Type.Array(obj({ keyId: KeyId, publicKey: Type.String({ minLength: 1, maxLength: 1000 }) }), { maxItems: 4096 }),
});
/** What a node host runs for the edge: its WireGuard link end, a listener per tunnel, an `ssh -R` per key. */
export const TunnelHostPlan = obj({
  hostId: HostId,
  /**
   * New at each start of the edge: the host's WireGuard sessions and ssh sessions with an
   * earlier run are dead (and the edge knows no endpoint of the host's to answer on), so the host
   * handshakes afresh and starts its sessions again now rather than after its backoff.
   */
  edgeEpoch: Type.String({ minLength: 1, maxLength: 64 }),
  wireguard: nullable(
    obj({
      edgePublicKey: WireGuardKey,
      /** host:port the edge's WireGuard listens on. */
      edgeEndpoint: Type.String({ minLength: 3, maxLength: 300 }),
      edgeAddress: Type.String({ minLength: 7, maxLength: 15 }),
      hostAddress: Type.String({ minLength: 7, maxLength: 15 }),
      range: Type.String({ minLength: 9, maxLength: 18 }),
      /** The host key the edge accepts now: the new one once it took a rotation's key, so the host switches. */
      hostPublicKey: nullable(WireGuardKey),
      /** A rotation under way: keep the previous key until it is over (the edge may go back to it). */
      rotating: Type.Boolean(),
    }),
  ),
  /** Listen on hostAddress:port (the WireGuard link), splice each connection to one of targets (a pool's nodes: the next one, and another if it refuses). */
  listeners: Type.Array(obj({ port: Type.Integer({ minimum: 1, maximum: 65535 }), targets: Type.Array(HostTarget, { maxItems: 256 }) }), { maxItems: 4096 }),
  edgeSsh: nullable(
    obj({ host: Type.String({ minLength: 1, maxLength: 253 }), port: Type.Integer({ minimum: 1, maximum: 65535 }), user: Type.String(), knownHostsLine: Type.String() }),
  ),
  /** One reverse tunnel per key: the edge's loopback forwardPort to targets on this host (a pool's: through a local splicer). */
  sessions: Type.Array(
    obj({
      keyId: KeyId,
      forwardPort: Type.Integer({ minimum: 1, maximum: 65535 }),
      targets: Type.Array(HostTarget, { maxItems: 256 }),
      /** A pool's: through a splicer of the host's, so its nodes can change under the session. */
      balanced: Type.Boolean(),
    }),
    { maxItems: 4096 },
  ),
  /** Keys to make now (their public halves come with the next request). */
  wantKeys: Type.Array(KeyId, { maxItems: 4096 }),
  /** Keys still in use: any other private key file of this host's is deleted. */
  keepKeys: Type.Array(KeyId, { maxItems: 4096 }),
  /** The edge wants a new WireGuard key of this host's (a rotation). */
  rotateWireguard: Type.Boolean(),
});
export const TunnelPlanChanged = obj({ hostId: HostId });

export const SyncProgress = obj({
  tenantId: TenantId,
  jobId: Id,
  bytes: Type.Integer({ minimum: 0 }),
  percent: Type.Number({ minimum: 0, maximum: 100 }),
});
export const SyncFinished = obj({
  tenantId: TenantId,
  jobId: Id,
  ok: Type.Boolean(),
  bytes: Type.Integer({ minimum: 0 }),
  reason: Type.Optional(Type.String()),
  at: Timestamp,
});

// ---- request/reply (core NATS, answered by the owner) ----

export const NodeView = obj({
  tenantId: TenantId,
  poolId: Id,
  nodeId: Id,
  name: Type.String(),
  kind: PoolKind,
  status: NodeStatus,
  country: nullable(CountryCode),
  region: nullable(Type.String()),
  city: nullable(Type.String()),
  /** The VPN server the node was asked to use, if any. */
  server: nullable(Type.String()),
  containerId: nullable(Type.String()),
  ports: Type.Array(PublishedPort),
  startedAt: nullable(Timestamp),
  stats: nullable(NodeMetrics),
});
export type NodeView = Static<typeof NodeView>;
export const NodeListRequest = obj({ tenantId: TenantId, poolId: Type.Optional(Id), nodeId: Type.Optional(Id) });
export const NodeListReply = obj({ nodes: Type.Array(NodeView) });

export const NodeLogsRequest = obj({ tenantId: TenantId, nodeId: Id, lines: Type.Integer({ minimum: 1, maximum: 10_000 }) });
/** `logs` is null when the tenant has no such node. */
export const NodeLogsReply = obj({ logs: nullable(Type.Array(Type.String())), lines: Type.Integer({ minimum: 0 }) });

export const PoolView = obj({ tenantId: TenantId, poolId: Id, name: Name, spec: PoolSpec });
export type PoolView = Static<typeof PoolView>;
/**
 * Names a page of one snapshot cut: the cut's id, a dot, the page's index. A snapshot is read
 * once, cut into pages that each fit a NATS message, and its pages are then served from that
 * one read (libs/service-kit/src/snapshot-pages.ts).
 */
export const SnapshotCursor = Type.String({ pattern: '^[0-9a-f]{32}\\.[0-9]{1,6}$' });
/** Every tenant's pools and nodes: what a routing or checking service rebuilds itself from. */
export const PoolSnapshotRequest = obj({
  tenantId: Type.Optional(TenantId),
  /** The page to serve: the `next` of the page before; the first page when absent. */
  cursor: Type.Optional(SnapshotCursor),
});
export const PoolSnapshotReply = obj({
  pools: Type.Array(PoolView),
  nodes: Type.Array(NodeView),
  /** The cursor of the next page of the same cut; absent on the last page. */
  next: Type.Optional(SnapshotCursor),
  /** The cursor's cut is no longer held (expired or evicted): start over without a cursor. */
  expired: Type.Optional(Type.Literal(true)),
  /** On the first page: rows of the cut left out because they fail their schema (each dead-lettered). */
  skipped: Type.Optional(Type.Integer({ minimum: 0 })),
});

export const NodeHealth = obj({
  tenantId: TenantId,
  poolId: Id,
  nodeId: Id,
  status: HealthStatus,
  score: Type.Integer({ minimum: 0, maximum: 100 }),
  latencyMs: nullable(Type.Number({ minimum: 0 })),
  lastCheckAt: nullable(Timestamp),
  reason: Type.String(),
});
export type NodeHealth = Static<typeof NodeHealth>;
export const HealthStatusRequest = obj({ tenantId: Type.Optional(TenantId), nodeIds: Type.Optional(Type.Array(Id)) });
export const HealthStatusReply = obj({ nodes: Type.Array(NodeHealth) });

export const SpeedTestRequest = obj({
  tenantId: TenantId,
  nodeId: Id,
  target: Type.Optional(Type.String({ description: 'base URL of the speed-test server (default from config)' })),
});
/** `error` says why there is no result (unknown node, node down, target unreachable). */
export const SpeedTestReply = obj({ result: nullable(SpeedTestResult), error: Type.Optional(Type.String()) });

export const BestNodeRequest = obj({
  tenantId: TenantId,
  country: Type.Optional(CountryCode),
  poolId: Type.Optional(Id),
  clientRegion: Type.Optional(Type.String()),
});
export const BestNodeReply = obj({ node: nullable(obj({ nodeId: Id, poolId: Id, strategy: BalancingStrategy })) });

export const NodeTraffic = obj({
  nodeId: Id,
  activeConnections: Type.Integer({ minimum: 0 }),
  totalConnections: Type.Integer({ minimum: 0 }),
  failedConnections: Type.Integer({ minimum: 0 }),
  rxBytes: Type.Integer({ minimum: 0 }),
  txBytes: Type.Integer({ minimum: 0 }),
});
export type NodeTraffic = Static<typeof NodeTraffic>;
export const TrafficRequest = obj({ tenantId: Type.Optional(TenantId), nodeIds: Type.Optional(Type.Array(Id)) });
export const TrafficReply = obj({ nodes: Type.Array(NodeTraffic) });

/** Reads (no strategy) or sets the tenant's default strategy, used by pools that name none. */
export const StrategyRequest = obj({ tenantId: TenantId, strategy: Type.Optional(BalancingStrategy) });
export const StrategyReply = obj({ strategy: BalancingStrategy });

/**
 * Arms the catch of a node about to sleep: from the reply on, a connection to any of its ports
 * is held and wakes it. The sleep controller stops the node only after `ok`.
 */
export const ArmRequest = obj({
  tenantId: TenantId,
  poolId: Id,
  nodeId: Id,
  /** The node's published ports; they stay the same while it sleeps and after it wakes. */
  ports: Type.Array(PublishedPort, { minItems: 1 }),
  probeIntervalMs: Type.Integer({ minimum: 1 }),
  probeTimeoutMs: Type.Integer({ minimum: 1 }),
});
/** `error` says why the catch could not be armed (then the node must not be put to sleep). */
export const ArmReply = obj({ ok: Type.Boolean(), error: Type.Optional(Type.String()) });

/** One node the activator knows, and how each of its ports is reached. */
export const CatchView = obj({
  tenantId: TenantId,
  poolId: Id,
  nodeId: Id,
  /** armed: asleep, connections are caught; waking: a wake is under way; awake: traffic goes to the node. */
  state: Type.Union([Type.Literal('armed'), Type.Literal('waking'), Type.Literal('awake')]),
  ports: Type.Array(
    obj({
      name: Type.String(),
      /** The node's own published port (nftables mode: caught here while asleep). */
      hostPort: Type.Integer(),
      /** Proxy mode: the activator's port for it, which clients use; null in nftables mode. */
      publicPort: nullable(Type.Integer()),
    }),
  ),
  probeIntervalMs: Type.Integer({ minimum: 1 }),
  probeTimeoutMs: Type.Integer({ minimum: 1 }),
});
export type CatchView = Static<typeof CatchView>;
export const CatchStateRequest = obj({ tenantId: Type.Optional(TenantId), nodeIds: Type.Optional(Type.Array(Id)) });
export const CatchStateReply = obj({
  mode: ActivatorMode,
  /** The port caught connections are redirected to (nftables mode). */
  listenPort: Type.Integer(),
  /** nftables mode: the ports now in the redirect set. */
  redirected: Type.Array(Type.Integer()),
  nodes: Type.Array(CatchView),
});

export const SleepPolicyRequest = obj({ tenantId: TenantId, poolId: Type.Optional(Id) });
export const SleepPolicyReply = obj({
  policies: Type.Array(obj({ tenantId: TenantId, poolId: Id, policy: SleepPolicy, updatedAt: Timestamp })),
});

/** One entry of the activity timeline, as `GET /v1/activity` returns it. */
export const ActivityEntry = obj({
  id: Type.String({ description: 'opaque, increasing; pass the last one seen as `before` for the next page' }),
  tenantId: TenantId,
  poolId: nullable(Id),
  nodeId: nullable(Id),
  kind: ActivityKind,
  message: Type.String({ description: 'for people: "woke in 412 ms (3 held connections)"' }),
  details: Type.Record(Type.String(), Type.Unknown()),
  at: Timestamp,
});
export type ActivityEntry = Static<typeof ActivityEntry>;

// ---- proxy users: api-gateway owns them; the load balancer checks credentials with these ----

/**
 * One token of the proxy username grammar `[<user>-]country-<cc>[-region-<r>][-session-<id>]`:
 * no dash (a dash would split the name into tokens the load balancer may read as keywords),
 * and not a keyword itself.
 */
export const PROXY_USER_NAME = /^(?!(?:country|region|session)$)[a-z0-9][a-z0-9_]{0,31}$/;
export const ProxyUserName = Type.String({
  pattern: PROXY_USER_NAME.source,
  description: 'lower-case letters, digits and underscores, 1-32 characters, starting with a letter or digit; not "country", "region" or "session"',
});
/** How the password was hashed: enough to recompute it, never the password itself. */
export const ProxyUserHash = obj({
  algorithm: Type.Literal('scrypt'),
  // Bounded so a verifier never runs an scrypt above Node's default 32 MiB memory limit.
  n: Type.Integer({ minimum: 1024, maximum: 32_768, description: 'scrypt cost (a power of two)' }),
  r: Type.Integer({ minimum: 1, maximum: 8 }),
  p: Type.Integer({ minimum: 1, maximum: 4 }),
  salt: Type.String({ minLength: 16, maxLength: 88, description: 'base64' }),
  hash: Type.String({ minLength: 16, maxLength: 88, description: 'base64 of the derived key' }),
});
export type ProxyUserHash = Static<typeof ProxyUserHash>;
export const ProxyUserView = obj({ tenantId: TenantId, userId: Id, name: ProxyUserName, hash: ProxyUserHash, createdAt: Timestamp });
export type ProxyUserView = Static<typeof ProxyUserView>;
export const ProxyUserRevoked = obj({ tenantId: TenantId, userId: Id, name: ProxyUserName, at: Timestamp });
/** Paged by user id, so the reply stays within a NATS message however many tenants there are. */
export const ProxyUserSnapshotRequest = obj({ after: Type.Optional(Id) });
export const ProxyUserSnapshotReply = obj({
  users: Type.Array(ProxyUserView),
  more: Type.Boolean({ description: 'true: ask again with `after` set to the last user id of this page' }),
});

// ---- ACL policy: api-gateway owns it; the load balancer and the socket activator enforce it ----

/**
 * Bounds on one tenant's policy, so that a hostile tenant cannot make the evaluators (every
 * load-balancer worker and the activator compile it) or the tests gate work without end.
 * libs/acl enforces them with a path and reason; the schema below repeats the ones it can say.
 */
export const ACL_LIMITS = {
  /** The policy as the tenant sends it (HuJSON, comments included). */
  maxTextBytes: 64 * 1024,
  /** Arrays and objects nested in the document. */
  maxDepth: 8,
  maxRules: 1000,
  /** Entries of one rule's `src` or `dst`. */
  maxRuleEntries: 256,
  maxGroups: 256,
  maxGroupMembers: 1024,
  maxHosts: 1024,
  maxTags: 1024,
  maxTagOwners: 64,
  maxTests: 256,
  /** Entries of one test's `accept` plus `deny`. */
  maxTestCases: 64,
  /** Cases of all tests together: the gate runs each. */
  maxTestCasesTotal: 2048,
  /** Any one string: an alias, a member, a name. */
  maxStringLength: 256,
} as const;

const AclString = Type.String({ minLength: 1, maxLength: ACL_LIMITS.maxStringLength });
const AclList = (maxItems: number) => Type.Array(AclString, { maxItems });

/**
 * A tenant's policy document as parsed from its HuJSON: the shape only. What the names mean
 * (aliases, ports, CIDRs, tags declared in tagOwners) is libs/acl's compilePolicy to check;
 * the gateway sends only documents that compiled and passed their own tests.
 */
export const AclPolicy = obj({
  groups: Type.Optional(Type.Record(AclString, AclList(ACL_LIMITS.maxGroupMembers), { maxProperties: ACL_LIMITS.maxGroups })),
  tagOwners: Type.Optional(Type.Record(AclString, AclList(ACL_LIMITS.maxTagOwners), { maxProperties: ACL_LIMITS.maxTags })),
  hosts: Type.Optional(Type.Record(AclString, AclString, { maxProperties: ACL_LIMITS.maxHosts })),
  acls: Type.Optional(
    Type.Array(
      obj({
        action: Type.Literal('accept'),
        src: AclList(ACL_LIMITS.maxRuleEntries),
        dst: AclList(ACL_LIMITS.maxRuleEntries),
      }),
      { maxItems: ACL_LIMITS.maxRules },
    ),
  ),
  tests: Type.Optional(
    Type.Array(
      obj({
        src: AclString,
        accept: Type.Optional(AclList(ACL_LIMITS.maxTestCases)),
        deny: Type.Optional(AclList(ACL_LIMITS.maxTestCases)),
      }),
      { maxItems: ACL_LIMITS.maxTests },
    ),
  ),
});
export type AclPolicy = Static<typeof AclPolicy>;

/**
 * A tenant's policy at a version. `policy` null: the tenant has no policy (deleted), and its
 * pools are governed by the rules without one. Versions only grow, across deletes too, so a
 * follower keeps the highest version it has seen and ignores anything older.
 */
export const AclPolicyView = obj({
  tenantId: TenantId,
  version: Type.Integer({ minimum: 1 }),
  policy: nullable(AclPolicy),
});
export type AclPolicyView = Static<typeof AclPolicyView>;

/** Paged as pool.req.snapshot: pages cut from one read (libs/service-kit snapshot-pages.ts). */
export const AclSnapshotRequest = obj({
  tenantId: Type.Optional(TenantId),
  /** The page to serve: the `next` of the page before; the first page when absent. */
  cursor: Type.Optional(SnapshotCursor),
});
export const AclSnapshotReply = obj({
  /** Every tenant that has or had a policy, with its version; null policies are deletes. */
  policies: Type.Array(AclPolicyView),
  next: Type.Optional(SnapshotCursor),
  expired: Type.Optional(Type.Literal(true)),
  skipped: Type.Optional(Type.Integer({ minimum: 0 })),
});
