import type { ReplyOf, TunnelPathKind } from '@switchyard/contracts';
import { nextRotation } from './plan.js';
import type { TunnelKeyRow, TunnelPathRow, TunnelRow } from './tables.js';

type TunnelView = ReplyOf<'tunnel.req.list'>['tunnels'][number];

/** A path as the forwarder last reported it. */
export interface PathStatus {
  state: 'up' | 'down' | 'unknown';
  latencyMs: number | null;
  reason: string | null;
  changedAt: Date | null;
}

/** What a running tunnel adds to its rows: the path taking new connections, each path's latest, its endpoint. */
export interface RunningTunnel {
  current: TunnelPathKind | undefined;
  paths: ReadonlyMap<TunnelPathKind, PathStatus>;
  endpoint: { host: string; port: number };
}

/**
 * A tunnel as tunnel.req.list answers it: from its row, its current key and its stored path
 * states, with what the forwarder says now when it runs. Only a key's public facts are shown.
 */
export function tunnelView(
  row: TunnelRow,
  status: TunnelView['status'],
  running: RunningTunnel | undefined,
  key: TunnelKeyRow | undefined,
  stored: readonly TunnelPathRow[],
): TunnelView {
  return {
    tenantId: row.tenant_id,
    tunnelId: row.id,
    spec: row.spec,
    status,
    reason: status === 'failed' ? 'not running on the edge now; tunnel-manager builds it again at its next resync' : null,
    endpoint: running?.endpoint ?? null,
    paths: row.spec.paths.map((path) => {
      const kept = stored.find((r) => r.kind === path.kind);
      const s: PathStatus =
        running?.paths.get(path.kind) ??
        (kept
          ? { state: kept.state, latencyMs: kept.latency_ms, reason: kept.reason, changedAt: kept.changed_at }
          : { state: 'unknown', latencyMs: null, reason: null, changedAt: null });
      return {
        kind: path.kind,
        ...(path.address ? { address: path.address } : {}),
        state: s.state,
        active: running?.current === path.kind,
        latencyMs: s.latencyMs === null ? null : Math.round(s.latencyMs * 100) / 100,
        reason: s.reason,
        changedAt: s.changedAt ? s.changedAt.toISOString() : null,
        key: path.kind === 'ssh' && key ? { fingerprint: key.fingerprint, createdAt: key.created_at.toISOString(), expiresAt: key.valid_until.toISOString() } : null,
      };
    }),
    createdAt: row.created_at.toISOString(),
    rotatedAt: row.rotated_at.toISOString(),
    nextRotationAt: nextRotation(row.rotated_at, row.spec).toISOString(),
  };
}
