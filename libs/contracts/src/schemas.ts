import Type, { type Static } from 'typebox';

// Shared building blocks for payloads and for the HTTP API. Objects are closed
// (additionalProperties: false) so a misspelt field is an error, not a silent default.
const closed = { additionalProperties: false } as const;

export const Id = Type.String({ format: 'uuid', description: 'a UUID' });
export const TenantId = Type.String({ format: 'uuid', description: 'the owning tenant' });
export const Timestamp = Type.String({ format: 'date-time', description: 'RFC 3339 time' });
export const CountryCode = Type.String({
  pattern: '^[A-Za-z]{2}$',
  description: 'ISO 3166-1 alpha-2 country code',
});
/** DNS-label shaped so it can become a container name and a stable service name. */
export const Name = Type.String({
  pattern: '^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$',
  description: 'lower-case letters, digits and dashes, 1-40 characters',
});

export const PoolKind = Type.Union([Type.Literal('exit'), Type.Literal('app')]);
export type PoolKind = Static<typeof PoolKind>;

export const BalancingStrategy = Type.Union([
  Type.Literal('round_robin'),
  Type.Literal('least_connections'),
  Type.Literal('weighted_latency'),
  Type.Literal('random'),
  Type.Literal('health_score'),
]);
export type BalancingStrategy = Static<typeof BalancingStrategy>;

export const HealthCheckSpec = Type.Object(
  {
    type: Type.Union([Type.Literal('tcp'), Type.Literal('http'), Type.Literal('proxy')]),
    port: Type.Optional(Type.String({ description: 'name of a port of the pool spec' })),
    path: Type.Optional(Type.String({ pattern: '^/[^\\s]*$', maxLength: 1024, description: 'an HTTP path: no whitespace' })),
    expectStatus: Type.Optional(Type.Integer({ minimum: 100, maximum: 599 })),
    target: Type.Optional(Type.String({ description: 'URL fetched through the proxy (type proxy)' })),
    intervalMs: Type.Integer({ minimum: 100, maximum: 3_600_000, default: 2000 }),
    timeoutMs: Type.Integer({ minimum: 10, maximum: 60_000, default: 1000 }),
    rise: Type.Integer({ minimum: 1, maximum: 100, default: 2 }),
    fall: Type.Integer({ minimum: 1, maximum: 100, default: 3 }),
    graceMs: Type.Integer({ minimum: 0, maximum: 3_600_000, default: 0 }),
  },
  closed,
);
export type HealthCheckSpec = Static<typeof HealthCheckSpec>;

const sleepPolicyFields = {
  enabled: Type.Boolean({ description: 'whether idle nodes of the pool are put to sleep' }),
  idleWindowSec: Type.Integer({
    minimum: 1,
    maximum: 604_800,
    default: 600,
    description: "a node sleeps once its container's transmitted packet count has not grown for this long",
  }),
  minAwake: Type.Integer({ minimum: 0, maximum: 100, default: 0, description: 'nodes of the pool never put to sleep' }),
  probeIntervalMs: Type.Integer({
    minimum: 1,
    maximum: 10_000,
    default: 30,
    description: "a waking node's port is tried this often until it accepts",
  }),
  probeTimeoutMs: Type.Integer({
    minimum: 1,
    maximum: 600_000,
    default: 10_000,
    description: 'a wake that is not ready after this long fails (wake_failed); not shorter than probeIntervalMs',
  }),
};
export const SleepPolicy = Type.Object(sleepPolicyFields, closed);
export type SleepPolicy = Static<typeof SleepPolicy>;
/** What `PUT /v1/pools/{id}/sleep` takes: omitted fields get their defaults (`withSleepDefaults`). */
export const SleepPolicyInput = Type.Object(
  {
    enabled: sleepPolicyFields.enabled,
    idleWindowSec: Type.Optional(sleepPolicyFields.idleWindowSec),
    minAwake: Type.Optional(sleepPolicyFields.minAwake),
    probeIntervalMs: Type.Optional(sleepPolicyFields.probeIntervalMs),
    probeTimeoutMs: Type.Optional(sleepPolicyFields.probeTimeoutMs),
  },
  closed,
);
export type SleepPolicyInput = Static<typeof SleepPolicyInput>;
export const SLEEP_POLICY_DEFAULTS = { idleWindowSec: 600, minAwake: 0, probeIntervalMs: 30, probeTimeoutMs: 10_000 } as const;
export function withSleepDefaults(input: SleepPolicyInput): SleepPolicy {
  return {
    enabled: input.enabled,
    idleWindowSec: input.idleWindowSec ?? SLEEP_POLICY_DEFAULTS.idleWindowSec,
    minAwake: input.minAwake ?? SLEEP_POLICY_DEFAULTS.minAwake,
    probeIntervalMs: input.probeIntervalMs ?? SLEEP_POLICY_DEFAULTS.probeIntervalMs,
    probeTimeoutMs: input.probeTimeoutMs ?? SLEEP_POLICY_DEFAULTS.probeTimeoutMs,
  };
}

/** How the socket activator catches connections to sleeping nodes. */
export const ActivatorMode = Type.Union([Type.Literal('nftables'), Type.Literal('proxy')]);
export type ActivatorMode = Static<typeof ActivatorMode>;

/** What an activity entry records. */
export const ActivityKind = Type.Union([
  Type.Literal('slept'),
  Type.Literal('woke'),
  Type.Literal('wake_failed'),
  Type.Literal('policy_changed'),
  Type.Literal('started'),
  Type.Literal('stopped'),
  Type.Literal('died'),
  Type.Literal('removed'),
  Type.Literal('draining'),
  // An order the gateway ended because nobody finished it in time (its reason in details).
  Type.Literal('order_failed'),
  Type.Literal('tunnel_opened'),
  Type.Literal('tunnel_closed'),
  Type.Literal('path_up'),
  Type.Literal('path_down'),
  Type.Literal('path_switched'),
  Type.Literal('keys_rotated'),
  Type.Literal('key_expired'),
]);
export type ActivityKind = Static<typeof ActivityKind>;

/**
 * bridge: ports are published on 127.0.0.1 by Docker. host: the node shares the host's
 * network (it can reach the host's loopback); the manager picks free ports and passes each
 * through the port's `env` variable.
 */
export const NetworkMode = Type.Union([Type.Literal('bridge'), Type.Literal('host')]);
export type NetworkMode = Static<typeof NetworkMode>;

/** What a sticky pool hashes to pick a node: the client address or the proxy session id. */
export const StickyKey = Type.Union([Type.Literal('client_ip'), Type.Literal('session')]);
export type StickyKey = Static<typeof StickyKey>;

export const HealthStatus = Type.Union([Type.Literal('healthy'), Type.Literal('unhealthy'), Type.Literal('unknown')]);
export type HealthStatus = Static<typeof HealthStatus>;

/** The last sample of a node's container figures (docker stats). */
export const NodeMetrics = Type.Object(
  {
    cpuPercent: Type.Number({ minimum: 0 }),
    memoryMb: Type.Number({ minimum: 0 }),
    memoryPercent: Type.Number({ minimum: 0 }),
    rxBytes: Type.Integer({ minimum: 0 }),
    txBytes: Type.Integer({ minimum: 0 }),
    rxPackets: Type.Integer({ minimum: 0 }),
    txPackets: Type.Integer({ minimum: 0 }),
    at: Timestamp,
  },
  closed,
);
export type NodeMetrics = Static<typeof NodeMetrics>;

export const PortSpec = Type.Object(
  {
    name: Name,
    containerPort: Type.Integer({ minimum: 1, maximum: 65535 }),
    protocol: Type.Optional(Type.Literal('tcp')),
    env: Type.Optional(
      Type.String({
        pattern: '^[A-Za-z_][A-Za-z0-9_]*$',
        description: 'with network "host": the variable that tells the image which port to listen on',
      }),
    ),
  },
  closed,
);
export type PortSpec = Static<typeof PortSpec>;

export const VolumeSpec = Type.Object({ name: Name, mountPath: Type.String({ pattern: '^/' }) }, closed);

/**
 * The declarative spec of a pool. Both kinds share one shape; the rules that tie fields
 * to a kind (an exit pool needs a country, an app pool an image and a port) live in
 * `checkPoolSpec`, so the error names the field instead of "must match anyOf".
 */
/** The most nodes one pool may have, on every path that adds one (create, scale, node.add). */
export const MAX_POOL_NODES = 100;

/**
 * Bounds on a pool's environment: with them, a pool row stays a few hundred KiB at worst
 * (far below NATS's 1 MB message bound, whatever a tenant sends).
 */
export const MAX_ENV_VARS = 64;
export const MAX_ENV_VALUE_BYTES = 4096;
const EnvName = Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$', maxLength: 128 });
const EnvMap = (description: string, maxValueLength = MAX_ENV_VALUE_BYTES) =>
  Type.Record(EnvName, Type.String({ maxLength: maxValueLength }), { maxProperties: MAX_ENV_VARS, description });

/**
 * What a node may use, in the spirit of fly.toml's [[vm]]: asked for here, bounded by the
 * operator's maxima (exit-node-manager's config); unset fields take the operator's defaults.
 */
export const ResourceSpec = Type.Object(
  {
    memoryMb: Type.Optional(Type.Integer({ minimum: 16, maximum: 1_048_576 })),
    cpus: Type.Optional(Type.Number({ minimum: 0.01, maximum: 1024 })),
    pids: Type.Optional(Type.Integer({ minimum: 16, maximum: 1_000_000 })),
  },
  closed,
);
export type ResourceSpec = Static<typeof ResourceSpec>;

/**
 * A pool's tag, as an ACL policy names it (`tag:web`): lower-case letters, digits and dashes
 * after the `tag:` prefix, as Tailscale's tags.
 */
export const ACL_TAG = /^tag:[a-z0-9][a-z0-9-]{0,62}$/;
export const MAX_POOL_TAGS = 16;
export const PoolTag = Type.String({
  pattern: ACL_TAG.source,
  description: 'tag:<name>: lower-case letters, digits and dashes, 1-63 characters after "tag:", starting with a letter or digit',
});

export const PoolSpec = Type.Object(
  {
    name: Name,
    kind: PoolKind,
    country: Type.Optional(CountryCode),
    region: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    city: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    image: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    env: Type.Optional(EnvMap('plain variables: returned by the API and shown in events')),
    secretEnv: Type.Optional(
      EnvMap(
        'secret variables: encrypted at rest and in messages, never returned by the API (its answers name them only), never in events or logs; as the request sends them, plaintext (at most MAX_ENV_VALUE_BYTES each, checked by the gateway); everywhere after the gateway, ciphertext',
        2 * MAX_ENV_VALUE_BYTES,
      ),
    ),
    resources: Type.Optional(ResourceSpec),
    nodes: Type.Object(
      {
        min: Type.Integer({ minimum: 0, maximum: MAX_POOL_NODES }),
        max: Type.Integer({ minimum: 1, maximum: MAX_POOL_NODES }),
      },
      closed,
    ),
    ports: Type.Optional(Type.Array(PortSpec, { maxItems: 16 })),
    volumes: Type.Optional(Type.Array(VolumeSpec, { maxItems: 16 })),
    healthCheck: Type.Optional(HealthCheckSpec),
    network: Type.Optional(NetworkMode),
    strategy: Type.Optional(BalancingStrategy),
    sticky: Type.Optional(StickyKey),
    geoAffinity: Type.Optional(Type.Boolean({ description: "prefer nodes whose region is the client's region" })),
    publicPort: Type.Optional(Type.Integer({ minimum: 1024, maximum: 65535, description: 'app pools: the TCP port the load balancer listens on' })),
    drainSec: Type.Optional(Type.Integer({ minimum: 0, maximum: 3600, description: 'scale-down waits this long for open connections to end (default 30)' })),
    limits: Type.Optional(
      Type.Object(
        {
          softConnections: Type.Integer({ minimum: 1 }),
          hardConnections: Type.Integer({ minimum: 1 }),
        },
        closed,
      ),
    ),
    sleep: Type.Optional(SleepPolicy),
    tags: Type.Optional(
      Type.Array(PoolTag, {
        maxItems: MAX_POOL_TAGS,
        description: "the pool's tags: an ACL policy's destinations (`tag:web:443`) name pools by them",
      }),
    ),
  },
  closed,
);
export type PoolSpec = Static<typeof PoolSpec>;

export const NodeStatus = Type.Union([
  Type.Literal('creating'),
  Type.Literal('starting'),
  Type.Literal('running'),
  Type.Literal('stopping'),
  Type.Literal('stopped'),
  Type.Literal('sleeping'),
  Type.Literal('error'),
  Type.Literal('removed'),
]);
export type NodeStatus = Static<typeof NodeStatus>;

export const PublishedPort = Type.Object(
  {
    name: Type.String(),
    containerPort: Type.Integer(),
    hostIp: Type.String(),
    hostPort: Type.Integer(),
  },
  closed,
);
export type PublishedPort = Static<typeof PublishedPort>;

export const OrderStatus = Type.Union([Type.Literal('accepted'), Type.Literal('in_progress'), Type.Literal('fulfilled'), Type.Literal('failed')]);
export type OrderStatus = Static<typeof OrderStatus>;

export const TunnelPathKind = Type.Union([Type.Literal('wireguard'), Type.Literal('ssh'), Type.Literal('direct')], {
  description:
    "wireguard: a WireGuard link tunnel-manager sets up; ssh: a reverse tunnel from the node's host to the edge's sshd; direct: an address of the node's host on a network the operator runs",
});
export type TunnelPathKind = Static<typeof TunnelPathKind>;

export const TunnelPathSpec = Type.Object(
  {
    kind: TunnelPathKind,
    address: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 253,
        description: "direct only, and required there: the node's host on the operator's network (an IPv4 address); the edge dials it at the node's published port",
      }),
    ),
  },
  closed,
);
export type TunnelPathSpec = Static<typeof TunnelPathSpec>;

export const TUNNEL_DEFAULTS = { probeIntervalMs: 1000, fall: 3, holdDownMs: 30_000, rotateEveryHours: 168, keyLifetimeDays: 90 } as const;

/**
 * A tunnel: one node's port, or one app pool's (each connection to one of its running nodes),
 * reached at an edge endpoint over paths in order of preference. Exactly one of nodeId and poolId.
 */
export const TunnelSpec = Type.Object(
  {
    name: Name,
    nodeId: Type.Optional(Id),
    poolId: Type.Optional(
      Type.String({ format: 'uuid', description: "an app pool: each connection goes to one of its running nodes (not with a direct path, which reaches one node's host)" }),
    ),
    port: Type.Integer({ minimum: 1, maximum: 65535, description: 'the container port, one the node (or the pool) publishes' }),
    paths: Type.Array(TunnelPathSpec, { minItems: 1, maxItems: 3, description: 'in order of preference, each kind at most once' }),
    probeIntervalMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 60_000, description: `default ${TUNNEL_DEFAULTS.probeIntervalMs}` })),
    fall: Type.Optional(Type.Integer({ minimum: 1, maximum: 20, description: `failed probes in a row that take a path down; default ${TUNNEL_DEFAULTS.fall}` })),
    holdDownMs: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 3_600_000,
        description: `how long a preferred path must be healthy before it takes new connections again; default ${TUNNEL_DEFAULTS.holdDownMs}`,
      }),
    ),
    rotateEveryHours: Type.Optional(Type.Integer({ minimum: 1, maximum: 24 * 90, description: `key rotation period; default ${TUNNEL_DEFAULTS.rotateEveryHours} (weekly)` })),
    keyLifetimeDays: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 365, description: `a key expires this long after it was made; default ${TUNNEL_DEFAULTS.keyLifetimeDays}` }),
    ),
  },
  closed,
);
export type TunnelSpec = Static<typeof TunnelSpec>;

export const SyncJobSpec = Type.Object(
  {
    name: Name,
    nodeId: Id,
    source: Type.String({ minLength: 1, description: 'volume name or absolute path' }),
    remote: Type.String({ minLength: 1, description: 'rclone remote:path' }),
    schedule: Type.String({ minLength: 1, description: 'cron expression' }),
    encrypt: Type.Boolean({ default: false }),
  },
  closed,
);
export type SyncJobSpec = Static<typeof SyncJobSpec>;
