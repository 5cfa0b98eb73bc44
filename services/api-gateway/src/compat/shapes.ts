import Type, { type Static } from 'typebox';
import type { NodeHealth, NodeStatus, NodeTraffic, NodeView } from '@switchyard/contracts';
import type { SpeedTest } from '../tables.js';

// The VPN Exit Controller API v2 shapes, field for field, so its clients work unchanged.
const nullable = <T extends import('typebox').TSchema>(t: T) => Type.Union([t, Type.Null()]);

export const CompatStatus = Type.Union([Type.Literal('running'), Type.Literal('stopped'), Type.Literal('error'), Type.Literal('starting'), Type.Literal('stopping')]);
export type CompatStatus = Static<typeof CompatStatus>;

const CompatMetrics = Type.Object({
  cpu_percent: Type.Number(),
  memory_percent: Type.Number(),
  memory_mb: Type.Number(),
  network_rx: Type.Integer({ description: 'bytes received by the container' }),
  network_tx: Type.Integer({ description: 'bytes sent by the container' }),
  connected_clients: Type.Integer({ description: 'open connections through the load balancer' }),
  vpn_connected: Type.Boolean({ description: 'running and healthy by its last check through the proxy' }),
  last_health_check: nullable(Type.String({ format: 'date-time' })),
});

export const CompatNode = Type.Object({
  id: Type.String({ format: 'uuid' }),
  country: Type.String({ description: 'lower-case ISO 3166-1 alpha-2 code, as in the URLs' }),
  status: CompatStatus,
  vpn_server: nullable(Type.String()),
  tailscale_hostname: nullable(Type.String({ description: 'null: tunnels are not opened for nodes yet' })),
  tailscale_ip: nullable(Type.String({ description: 'null: tunnels are not opened for nodes yet' })),
  started_at: nullable(Type.String({ format: 'date-time' })),
  health_status: Type.Union([Type.Literal('healthy'), Type.Literal('unhealthy'), Type.Literal('unknown')]),
  metrics: CompatMetrics,
});
export type CompatNode = Static<typeof CompatNode>;

export const CompatSpeedTest = Type.Object({
  node_id: Type.String({ format: 'uuid' }),
  download_mbps: Type.Number(),
  upload_mbps: Type.Number(),
  latency_ms: Type.Number(),
  tested_at: Type.String({ format: 'date-time' }),
});
export type CompatSpeedTest = Static<typeof CompatSpeedTest>;

const STATUS: Record<NodeStatus, CompatStatus> = {
  creating: 'starting',
  starting: 'starting',
  running: 'running',
  stopping: 'stopping',
  stopped: 'stopped',
  sleeping: 'stopped',
  removed: 'stopped',
  error: 'error',
};
export const compatStatus = (s: NodeStatus): CompatStatus => STATUS[s];

/** Missing health is "unknown" and missing counters are zeros: the node is still shown. */
export function toCompatNode(n: NodeView, health?: NodeHealth, traffic?: NodeTraffic): CompatNode {
  const status = compatStatus(n.status);
  const healthStatus = health?.status ?? 'unknown';
  return {
    id: n.nodeId,
    country: (n.country ?? '').toLowerCase(),
    status,
    vpn_server: n.server,
    tailscale_hostname: null,
    tailscale_ip: null,
    started_at: n.startedAt,
    health_status: healthStatus,
    metrics: {
      cpu_percent: n.stats?.cpuPercent ?? 0,
      memory_percent: n.stats?.memoryPercent ?? 0,
      memory_mb: n.stats?.memoryMb ?? 0,
      network_rx: n.stats?.rxBytes ?? 0,
      network_tx: n.stats?.txBytes ?? 0,
      connected_clients: traffic?.activeConnections ?? 0,
      vpn_connected: status === 'running' && healthStatus === 'healthy',
      last_health_check: health?.lastCheckAt ?? null,
    },
  };
}

export function toCompatSpeedTest(r: SpeedTest): CompatSpeedTest {
  return { node_id: r.node_id, download_mbps: r.download_mbps, upload_mbps: r.upload_mbps, latency_ms: r.latency_ms, tested_at: r.tested_at.toISOString() };
}

/** The compat API lists the exit nodes that exist (a removed node is history, not a node). */
export const isListedExitNode = (n: NodeView) => n.kind === 'exit' && n.status !== 'removed';

export const CompatStats = Type.Object({
  total_nodes: Type.Integer(),
  active_nodes: Type.Integer({ description: 'nodes running' }),
  total_traffic: Type.Integer({ description: 'bytes received plus sent by every node container' }),
  connected_clients: Type.Integer({ description: 'open connections through the load balancer' }),
});

export function compatStats(nodes: NodeView[], traffic: Map<string, NodeTraffic>): Static<typeof CompatStats> {
  let totalTraffic = 0;
  let clients = 0;
  for (const n of nodes) {
    totalTraffic += (n.stats?.rxBytes ?? 0) + (n.stats?.txBytes ?? 0);
    clients += traffic.get(n.nodeId)?.activeConnections ?? 0;
  }
  return { total_nodes: nodes.length, active_nodes: nodes.filter((n) => n.status === 'running').length, total_traffic: totalTraffic, connected_clients: clients };
}
