import type { NodeStatus, Payload, PublishedPort, ReplyOf } from '@switchyard/contracts';
import { withSpan } from '@switchyard/telemetry';
import { measureSpeed, SpeedTestError } from './speedtest.js';

export interface SpeedTestDeps {
  readonly node: (nodeId: string) => { tenantId: string; lifecycle: NodeStatus; ports: readonly PublishedPort[] } | undefined;
  /** SPEEDTEST_URL: a request's own `target` goes first. */
  readonly defaultUrl: string;
  readonly bytes: number;
  readonly timeoutMs: number;
  readonly publish: (result: Payload<'health.evt.speedtest'>) => Promise<void>;
  readonly log: { warn(obj: object, msg: string): void };
}

type Reply = ReplyOf<'health.req.speedtest'>;

/**
 * `health.req.speedtest`: a speed test through the node's proxy now. A second request for a
 * node whose test is running gets the same answer instead of halving both figures.
 */
export function createSpeedTests(deps: SpeedTestDeps): (p: Payload<'health.req.speedtest'>) => Promise<Reply> {
  const running = new Map<string, Promise<Reply>>();

  async function run(p: Payload<'health.req.speedtest'>): Promise<Reply> {
    const node = deps.node(p.nodeId);
    if (!node || node.tenantId !== p.tenantId) return { result: null, error: `unknown node ${p.nodeId}` };
    if (node.lifecycle !== 'running') return { result: null, error: `node is not running (${node.lifecycle})` };
    const proxy = node.ports.find((port) => port.name === 'proxy');
    if (!proxy) return { result: null, error: 'node has no proxy port (speed tests run through an exit node)' };
    const baseUrl = p.target ?? deps.defaultUrl;

    return withSpan('speedtest', { attributes: { 'switchyard.node.id': p.nodeId, 'switchyard.speedtest.bytes': deps.bytes } }, async (span) => {
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(), deps.timeoutMs);
      try {
        const figures = await measureSpeed({
          proxyHost: proxy.hostIp === '0.0.0.0' ? '127.0.0.1' : proxy.hostIp,
          proxyPort: proxy.hostPort,
          baseUrl,
          bytes: deps.bytes,
          signal: abort.signal,
        });
        const result = { tenantId: p.tenantId, nodeId: p.nodeId, ...figures, at: new Date().toISOString() };
        span.setAttributes({ 'switchyard.speedtest.download_mbps': figures.downloadMbps, 'switchyard.speedtest.upload_mbps': figures.uploadMbps });
        // The measurement stands even if the event cannot be stored right now.
        await deps.publish(result).catch((err: unknown) => deps.log.warn({ err: (err as Error).message, nodeId: p.nodeId }, 'could not publish health.evt.speedtest'));
        return { result };
      } catch (err) {
        if (abort.signal.aborted) return { result: null, error: `no result within ${deps.timeoutMs} ms` };
        if (err instanceof SpeedTestError) return { result: null, error: (err as Error).message };
        throw err;
      } finally {
        clearTimeout(timer);
      }
    });
  }

  return (p) => {
    const key = `${p.tenantId}/${p.nodeId}/${p.target ?? ''}`;
    const pending = running.get(key);
    if (pending) return pending;
    const started = run(p).finally(() => running.delete(key));
    running.set(key, started);
    return started;
  };
}
