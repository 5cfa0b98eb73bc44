import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** What the core reports; counted by prom-client in the service, recorded by fakes in tests. */
export interface ActivatorMetrics {
  /** A connection reached the activator (caught while asleep, or a proxy-mode connection). */
  caught(held: boolean): void;
  coldStart(stage: 'ready' | 'first_byte', ms: number): void;
  wake(outcome: 'woke' | 'failed', trigger: 'connection' | 'manual'): void;
  /** A connection the tenant's ACL policy refused (or that came before the policies were known): let go, nothing woken. */
  refused(reason: 'denied' | 'unknown'): void;
}

export const noMetrics: ActivatorMetrics = { caught: () => {}, coldStart: () => {}, wake: () => {}, refused: () => {} };

export function createMetrics(redirected: () => number): { registry: Registry; metrics: ActivatorMetrics } {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const coldStart = new Histogram({
    name: 'switchyard_activator_cold_start_seconds',
    help: 'first caught connection (or start) until the node was ready, and until its first byte was forwarded',
    labelNames: ['stage'] as const,
    buckets: [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30],
    registers: [registry],
  });
  const connections = new Counter({
    name: 'switchyard_activator_connections_total',
    help: 'connections that reached the activator; held: caught while the node slept or woke',
    labelNames: ['held'] as const,
    registers: [registry],
  });
  const wakes = new Counter({
    name: 'switchyard_activator_wakes_total',
    help: 'wakes by outcome and trigger',
    labelNames: ['outcome', 'trigger'] as const,
    registers: [registry],
  });
  const refused = new Counter({
    name: 'switchyard_activator_refused_total',
    help: "connections let go before anything was woken: denied by the tenant's ACL policy, or unknown (the policies not read yet)",
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  new Gauge({
    name: 'switchyard_activator_redirected_ports',
    help: 'ports now in the nftables redirect set',
    registers: [registry],
    collect() {
      this.set(redirected());
    },
  });
  return {
    registry,
    metrics: {
      caught: (held) => connections.inc({ held: String(held) }),
      coldStart: (stage, ms) => coldStart.observe({ stage }, ms / 1000),
      wake: (outcome, trigger) => wakes.inc({ outcome, trigger }),
      refused: (reason) => refused.inc({ reason }),
    },
  };
}

export async function serveMetrics(registry: Registry, host: string, port: number): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
      (err: unknown) => res.writeHead(500).end(String(err)),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}
