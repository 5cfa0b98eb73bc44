import { describe, expect, it } from 'vitest';
import { cpuPercent, memoryUsed, metricsFromHash, metricsToHash, toMetrics, type DockerStatsSample } from '../src/stats.js';

const at = new Date('2026-12-01T10:00:00.000Z');
const sample: DockerStatsSample = {
  cpu_stats: { cpu_usage: { total_usage: 2_000_000_000 }, system_cpu_usage: 20_000_000_000, online_cpus: 2 },
  precpu_stats: { cpu_usage: { total_usage: 1_000_000_000 }, system_cpu_usage: 10_000_000_000 },
  memory_stats: { usage: 60 * 1024 * 1024, limit: 1024 * 1024 * 1024, stats: { inactive_file: 10 * 1024 * 1024 } },
  networks: {
    eth0: { rx_bytes: 1000, tx_bytes: 2000, rx_packets: 10, tx_packets: 20 },
    eth1: { rx_bytes: 1, tx_bytes: 2, rx_packets: 3, tx_packets: 4 },
  },
};

describe('stats of a Docker sample', () => {
  it('computes cpu % like docker stats: share of system time times cores', () => {
    expect(cpuPercent(sample)).toBe(20);
  });

  it('reports 0 % for the first sample of a stream, which has no previous one', () => {
    expect(cpuPercent({ ...sample, precpu_stats: {} })).toBe(0);
  });

  it('falls back to the per-cpu list, then one core', () => {
    const { online_cpus: _, ...cpu } = sample.cpu_stats!;
    expect(cpuPercent({ ...sample, cpu_stats: { ...cpu, cpu_usage: { ...cpu.cpu_usage, percpu_usage: [1, 2, 3, 4] } } })).toBe(40);
    expect(cpuPercent({ ...sample, cpu_stats: cpu })).toBe(10);
  });

  it('leaves the reclaimable page cache out of memory (cgroup v2, v1 and old engines)', () => {
    expect(memoryUsed(sample)).toBe(50 * 1024 * 1024);
    expect(memoryUsed({ memory_stats: { usage: 100, stats: { total_inactive_file: 30 } } })).toBe(70);
    expect(memoryUsed({ memory_stats: { usage: 100, stats: { cache: 40 } } })).toBe(60);
    expect(memoryUsed({ memory_stats: { usage: 100, stats: { inactive_file: 500 } } })).toBe(100);
  });

  it('sums every interface and reports MB and % of the limit', () => {
    expect(toMetrics(sample, at)).toEqual({
      cpuPercent: 20,
      memoryMb: 50,
      memoryPercent: 4.88,
      rxBytes: 1001,
      txBytes: 2002,
      rxPackets: 13,
      txPackets: 24,
      at: at.toISOString(),
    });
  });

  it('gives zeros for a host-network container (no interfaces) and an unlimited one', () => {
    const m = toMetrics({ memory_stats: { usage: 1024 * 1024 } }, at);
    expect(m).toMatchObject({ rxBytes: 0, txBytes: 0, rxPackets: 0, txPackets: 0, memoryMb: 1, memoryPercent: 0 });
  });

  it('round-trips through the redis hash, and reads an incomplete hash as none', () => {
    const m = toMetrics(sample, at);
    expect(metricsFromHash(metricsToHash(m))).toEqual(m);
    expect(metricsFromHash({})).toBeNull();
    expect(metricsFromHash({ ...metricsToHash(m), cpuPercent: 'x' })).toBeNull();
    const { rxBytes: _, ...partial } = metricsToHash(m);
    expect(metricsFromHash(partial)).toBeNull();
  });
});
