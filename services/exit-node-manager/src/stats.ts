import type { NodeMetrics } from '@switchyard/contracts';

/** The part of a Docker stats sample (GET /containers/{id}/stats) the figures come from. */
export interface DockerStatsSample {
  read?: string;
  cpu_stats?: CpuStats;
  precpu_stats?: CpuStats;
  memory_stats?: {
    usage?: number;
    limit?: number;
    stats?: Record<string, number | undefined>;
  };
  networks?: Record<string, { rx_bytes?: number; tx_bytes?: number; rx_packets?: number; tx_packets?: number }>;
}

interface CpuStats {
  cpu_usage?: { total_usage?: number; percpu_usage?: number[] | null };
  system_cpu_usage?: number;
  online_cpus?: number;
}

const MB = 1024 * 1024;
const round = (value: number, digits: number) => Math.round(value * 10 ** digits) / 10 ** digits;

/** The same figure `docker stats` shows: the container's share of the host's CPU time, × cores. */
export function cpuPercent(sample: DockerStatsSample): number {
  const cpu = sample.cpu_stats;
  const pre = sample.precpu_stats;
  const cpuDelta = (cpu?.cpu_usage?.total_usage ?? 0) - (pre?.cpu_usage?.total_usage ?? 0);
  const systemDelta = (cpu?.system_cpu_usage ?? 0) - (pre?.system_cpu_usage ?? 0);
  // The first sample of a stream has no previous one; its delta is the whole lifetime.
  if (!pre?.system_cpu_usage || cpuDelta <= 0 || systemDelta <= 0) return 0;
  const cores = cpu?.online_cpus || cpu?.cpu_usage?.percpu_usage?.length || 1;
  return round((cpuDelta / systemDelta) * cores * 100, 2);
}

/** Memory in use without the page cache the kernel can drop, as `docker stats` counts it. */
export function memoryUsed(sample: DockerStatsSample): number {
  const usage = sample.memory_stats?.usage ?? 0;
  const stats = sample.memory_stats?.stats ?? {};
  // cgroup v2 names it inactive_file, v1 total_inactive_file; older engines subtracted cache.
  const reclaimable = stats['inactive_file'] ?? stats['total_inactive_file'] ?? stats['cache'] ?? 0;
  return reclaimable < usage ? usage - reclaimable : usage;
}

export function toMetrics(sample: DockerStatsSample, at: Date): NodeMetrics {
  const used = memoryUsed(sample);
  const limit = sample.memory_stats?.limit ?? 0;
  let rxBytes = 0,
    txBytes = 0,
    rxPackets = 0,
    txPackets = 0;
  // A host-network container has no interfaces of its own, so no figures: zeros.
  for (const nic of Object.values(sample.networks ?? {})) {
    rxBytes += nic.rx_bytes ?? 0;
    txBytes += nic.tx_bytes ?? 0;
    rxPackets += nic.rx_packets ?? 0;
    txPackets += nic.tx_packets ?? 0;
  }
  return {
    cpuPercent: cpuPercent(sample),
    memoryMb: round(used / MB, 2),
    memoryPercent: limit > 0 ? round((used / limit) * 100, 2) : 0,
    rxBytes,
    txBytes,
    rxPackets,
    txPackets,
    at: at.toISOString(),
  };
}

const FIELDS = ['cpuPercent', 'memoryMb', 'memoryPercent', 'rxBytes', 'txBytes', 'rxPackets', 'txPackets'] as const;

/** The `stats:<nodeId>` hash of a sample. */
export function metricsToHash(m: NodeMetrics): Record<string, string> {
  const hash: Record<string, string> = { at: m.at };
  for (const f of FIELDS) hash[f] = String(m[f]);
  return hash;
}

/** A `stats:<nodeId>` hash back to a sample; null when it is absent or incomplete. */
export function metricsFromHash(hash: Record<string, string> | null | undefined): NodeMetrics | null {
  if (!hash?.['at']) return null;
  const out: Record<string, number> = {};
  for (const f of FIELDS) {
    const v = Number(hash[f]);
    if (hash[f] === undefined || !Number.isFinite(v) || v < 0) return null;
    out[f] = v;
  }
  return { ...(out as Omit<NodeMetrics, 'at'>), at: hash['at'] };
}
