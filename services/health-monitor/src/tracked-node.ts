import type { HealthCheckSpec, NodeHealth, NodeStatus, PoolKind, PublishedPort } from '@switchyard/contracts';
import type { ResolvedCheck } from './check-spec.js';
import { ScoreWindow } from './score.js';
import { newCheckState, type CheckState } from './state.js';

/** One node the monitor follows: what events and snapshots said of it, and its checks' results. */
export interface TrackedNode {
  readonly tenantId: string;
  readonly poolId: string;
  readonly nodeId: string;
  kind: PoolKind | undefined;
  /** The check node.evt.created carried, used while the pool itself is not known. */
  createdCheck: HealthCheckSpec | undefined;
  lifecycle: NodeStatus;
  ports: readonly PublishedPort[];
  check: ResolvedCheck | null;
  readonly state: CheckState;
  readonly window: ScoreWindow;
  score: number;
  latencyMs: number | null;
  lastCheckAt: number | null;
  /** When an event last told this monitor about the node (monitor clock). */
  lastEventAt: number;
  /** Bumped on every start and stop, so a check begun before it is ignored. */
  epoch: number;
  inflight: boolean;
  connfails: number[];
  /** Running without active checks because its pool sleeps when idle; passive signals only. */
  passiveOnly: boolean;
}

/** A node seen for the first time: being created, unchecked, with no event about it yet. */
export function newTrackedNode(tenantId: string, poolId: string, nodeId: string, kind: PoolKind | undefined): TrackedNode {
  return {
    tenantId,
    poolId,
    nodeId,
    kind,
    createdCheck: undefined,
    lifecycle: 'creating',
    ports: [],
    check: null,
    state: newCheckState(),
    window: new ScoreWindow(),
    score: 0,
    latencyMs: null,
    lastCheckAt: null,
    lastEventAt: -Infinity,
    epoch: 0,
    inflight: false,
    connfails: [],
    passiveOnly: false,
  };
}

/** The node's health record, as `health.req.status` answers it and Redis keeps it. */
export function healthRecord(n: TrackedNode): NodeHealth {
  return {
    tenantId: n.tenantId,
    poolId: n.poolId,
    nodeId: n.nodeId,
    status: n.state.status,
    score: n.score,
    latencyMs: n.latencyMs,
    lastCheckAt: n.lastCheckAt === null ? null : new Date(n.lastCheckAt).toISOString(),
    reason: n.state.reason,
  };
}
