import Type from 'typebox';
import { HealthStatus, Id, NodeMetrics, NodeStatus, PoolKind, PoolSpec, PublishedPort, Timestamp, type NodeHealth, type NodeTraffic, type NodeView } from '@switchyard/contracts';

const nullable = <T extends import('typebox').TSchema>(t: T) => Type.Union([t, Type.Null()]);

export const ErrorBody = Type.Object({
  error: Type.String(),
  message: Type.String(),
  issues: Type.Optional(Type.Array(Type.Object({ field: Type.String(), message: Type.String() }))),
});

/** What the native API shows of a node: the manager's view without the owner's internals. */
export const NodeSummary = Type.Object({
  id: Id,
  poolId: Id,
  name: Type.String(),
  kind: PoolKind,
  status: NodeStatus,
  country: nullable(Type.String()),
  region: nullable(Type.String()),
  city: nullable(Type.String()),
  server: nullable(Type.String()),
  ports: Type.Array(PublishedPort),
  startedAt: nullable(Timestamp),
  stats: nullable(NodeMetrics),
});

export function toNodeSummary(n: NodeView) {
  return {
    id: n.nodeId,
    poolId: n.poolId,
    name: n.name,
    kind: n.kind,
    status: n.status,
    country: n.country,
    region: n.region,
    city: n.city,
    server: n.server,
    ports: n.ports,
    startedAt: n.startedAt,
    stats: n.stats,
  };
}

export const PoolDetail = Type.Object({ id: Id, name: Type.String(), spec: PoolSpec, nodes: Type.Array(NodeSummary) });

export const Health = Type.Object({
  status: HealthStatus,
  score: nullable(Type.Integer({ minimum: 0, maximum: 100 })),
  latencyMs: nullable(Type.Number()),
  lastCheckAt: nullable(Timestamp),
  reason: Type.String(),
});

export function toHealth(h: NodeHealth | undefined, unavailable: boolean) {
  if (!h) return { status: 'unknown' as const, score: null, latencyMs: null, lastCheckAt: null, reason: unavailable ? 'health-monitor did not answer' : 'not checked yet' };
  return { status: h.status, score: h.score, latencyMs: h.latencyMs, lastCheckAt: h.lastCheckAt, reason: h.reason };
}

export const Traffic = Type.Object({
  activeConnections: Type.Integer(),
  totalConnections: Type.Integer(),
  failedConnections: Type.Integer(),
  rxBytes: Type.Integer(),
  txBytes: Type.Integer(),
});

export function toTraffic(t: NodeTraffic | undefined) {
  return {
    activeConnections: t?.activeConnections ?? 0,
    totalConnections: t?.totalConnections ?? 0,
    failedConnections: t?.failedConnections ?? 0,
    rxBytes: t?.rxBytes ?? 0,
    txBytes: t?.txBytes ?? 0,
  };
}

export const Unavailable = Type.Array(Type.String(), { description: 'services that did not answer; their figures are "unknown" or zero' });

export const SpeedTestView = Type.Object({
  nodeId: Id,
  downloadMbps: Type.Number(),
  uploadMbps: Type.Number(),
  latencyMs: Type.Number(),
  testedAt: Timestamp,
});
