import type { NodeMetrics } from '@switchyard/contracts';
import type { Docker } from '@switchyard/docker';
import { toMetrics, type DockerStatsSample } from './stats.js';
import { onJsonLines } from './json-lines.js';

interface SampledNode {
  readonly tenantId: string;
  readonly poolId: string;
  readonly nodeId: string;
}

export interface StatsSamplerOptions {
  readonly intervalMs: number;
  /** Called once per interval per node with its latest sample; must not throw. */
  onSample(node: SampledNode, metrics: NodeMetrics): Promise<void>;
  onError(containerId: string, reason: string): void;
}

export interface StatsSampler {
  /** Samples the container from now on (no-op when it already is). */
  track(containerId: string, node: SampledNode): void;
  untrack(containerId: string): void;
  /** Tracks exactly these running containers; streams that ended are opened again. */
  sync(running: ReadonlyArray<{ containerId: string; node: SampledNode }>): void;
  stop(): void;
}

interface Entry {
  readonly node: SampledNode;
  stream?: NodeJS.ReadableStream & { destroy?: () => void };
  ended: boolean;
  latest?: NodeMetrics;
}

/**
 * Keeps one streaming stats request open per running node (Docker sends a sample about once a
 * second; a one-shot request costs 1-2 s each) and reports the latest sample every interval.
 */
export function createStatsSampler(docker: Docker, opts: StatsSamplerOptions): StatsSampler {
  const entries = new Map<string, Entry>();

  function open(containerId: string, entry: Entry) {
    entry.ended = false;
    void (async () => {
      try {
        const stream = (await docker.getContainer(containerId).stats({ stream: true })) as unknown as Entry['stream'] & NodeJS.ReadableStream;
        if (entries.get(containerId) !== entry) return stream.destroy?.();
        entry.stream = stream;
        onJsonLines(stream, (raw) => {
          const sample = raw as DockerStatsSample;
          try {
            const at = sample.read && !sample.read.startsWith('0001-') ? new Date(sample.read) : new Date();
            entry.latest = toMetrics(sample, at);
          } catch {
            // One unreadable sample; the next one replaces it.
          }
        });
        const end = () => {
          entry.ended = true;
        };
        stream.once('end', end);
        stream.once('close', end);
        stream.once('error', (err: Error) => {
          end();
          opts.onError(containerId, err.message);
        });
      } catch (err) {
        entry.ended = true;
        opts.onError(containerId, (err as Error).message);
      }
    })();
  }

  const timer = setInterval(() => {
    for (const entry of entries.values()) {
      if (entry.latest) void opts.onSample(entry.node, entry.latest);
    }
  }, opts.intervalMs);
  timer.unref();

  const sampler: StatsSampler = {
    track(containerId, node) {
      const existing = entries.get(containerId);
      if (existing && !existing.ended) return;
      if (existing) existing.stream?.destroy?.();
      const entry: Entry = { node, ended: false };
      entries.set(containerId, entry);
      open(containerId, entry);
    },
    untrack(containerId) {
      const entry = entries.get(containerId);
      if (!entry) return;
      entries.delete(containerId);
      entry.stream?.destroy?.();
    },
    sync(running) {
      const keep = new Set(running.map((r) => r.containerId));
      for (const id of [...entries.keys()]) if (!keep.has(id)) sampler.untrack(id);
      for (const r of running) sampler.track(r.containerId, r.node);
    },
    stop() {
      clearInterval(timer);
      for (const id of [...entries.keys()]) sampler.untrack(id);
    },
  };
  return sampler;
}
