import Type, { type Static } from 'typebox';
import {
  CountryCode,
  HealthCheckSpec,
  Id,
  Name,
  NodeStatus,
  PoolSpec,
  PublishedPort,
  SleepPolicy,
  SyncJobSpec,
  TenantId,
  Timestamp,
  TunnelSpec,
} from './schemas.js';

const closed = { additionalProperties: false } as const;
const obj = <P extends Record<string, import('typebox').TSchema>>(props: P) => Type.Object(props, closed);

// ---- commands: stored in the CMD stream, each subject consumed by exactly one service ----

export const PoolCreate = obj({ orderId: Id, tenantId: TenantId, poolId: Id, spec: PoolSpec });
export const PoolScale = obj({
  orderId: Id,
  tenantId: TenantId,
  poolId: Id,
  nodes: obj({ min: Type.Integer({ minimum: 0 }), max: Type.Integer({ minimum: 1 }) }),
});
export const PoolDelete = obj({ orderId: Id, tenantId: TenantId, poolId: Id });
export const NodeCommand = obj({
  orderId: Type.Optional(Id),
  tenantId: TenantId,
  nodeId: Id,
  reason: Type.Optional(Type.String({ maxLength: 200 })),
});
export const SleepPolicySet = obj({ tenantId: TenantId, poolId: Id, policy: SleepPolicy });
export const SpeedTestRun = obj({ tenantId: TenantId, nodeId: Id, requestId: Id });
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
});
export const NodeStopped = obj({ ...nodeFacts, containerId: Type.String(), reason: Type.String() });
export const NodeDied = obj({
  ...nodeFacts,
  containerId: Type.String(),
  exitCode: Type.Integer(),
  oomKilled: Type.Boolean(),
});
export const NodeRemoved = obj({ ...nodeFacts, reason: Type.String() });
export const NodeStats = obj({
  ...nodeFacts,
  cpuPercent: Type.Number({ minimum: 0 }),
  memoryMb: Type.Number({ minimum: 0 }),
  memoryPercent: Type.Number({ minimum: 0 }),
  rxBytes: Type.Integer({ minimum: 0 }),
  txBytes: Type.Integer({ minimum: 0 }),
  rxPackets: Type.Integer({ minimum: 0 }),
  txPackets: Type.Integer({ minimum: 0 }),
});

export const HealthChanged = obj({
  ...nodeFacts,
  status: Type.Union([Type.Literal('healthy'), Type.Literal('unhealthy')]),
  score: Type.Integer({ minimum: 0, maximum: 100 }),
  reason: Type.String(),
});
export const SpeedTestResult = obj({
  tenantId: TenantId,
  nodeId: Id,
  requestId: Id,
  downloadMbps: Type.Number({ minimum: 0 }),
  uploadMbps: Type.Number({ minimum: 0 }),
  latencyMs: Type.Number({ minimum: 0 }),
  at: Timestamp,
});
export const ConnectionFailed = obj({
  ...nodeFacts,
  error: Type.String(),
});

export const NodeSlept = obj({ ...nodeFacts, reason: Type.String(), idleSec: Type.Number({ minimum: 0 }) });
export const NodeWoke = obj({
  ...nodeFacts,
  readyMs: Type.Number({ minimum: 0 }),
  firstByteMs: Type.Optional(Type.Number({ minimum: 0 })),
  heldConnections: Type.Integer({ minimum: 0 }),
});
export const WakeFailed = obj({ ...nodeFacts, reason: Type.String(), heldConnections: Type.Integer({ minimum: 0 }) });

export const TunnelChanged = obj({
  tenantId: TenantId,
  tunnelId: Id,
  path: Type.String(),
  reason: Type.Optional(Type.String()),
  at: Timestamp,
});
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
  status: NodeStatus,
  containerId: Type.Union([Type.String(), Type.Null()]),
  ports: Type.Array(PublishedPort),
  startedAt: Type.Union([Timestamp, Type.Null()]),
});
export type NodeView = Static<typeof NodeView>;
export const NodeListRequest = obj({ tenantId: TenantId, poolId: Type.Optional(Id) });
export const NodeListReply = obj({ nodes: Type.Array(NodeView) });
