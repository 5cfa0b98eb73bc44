import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { expect } from 'vitest';
import { eventually } from './async.js';
import { natsRequest } from './exit-pool.js';
import { freePort } from './net.js';
import type { ServiceProcess } from './processes.js';
import { EXIT_NODE_IMAGE, type TestSystem } from './system.js';

const run = promisify(execFile);

/** An nftables table of the test's own; delete it with `deleteNftTable` in afterAll. */
export function nftTableName(): string {
  return `sy_test_${randomBytes(5).toString('hex')}`;
}

export async function deleteNftTable(table: string): Promise<void> {
  await run('nft', ['delete', 'table', 'ip', table]).catch((err: { stderr?: string }) => {
    if (!/No such file or directory/.test(err.stderr ?? '')) throw err;
  });
}

/** The ports in the table's redirect set, as the kernel has them. */
export async function redirectedPorts(table: string): Promise<number[]> {
  const { stdout } = await run('nft', ['-j', 'list', 'set', 'ip', table, 'sleeping_ports']);
  const set = (JSON.parse(stdout) as { nftables: Array<{ set?: { elem?: unknown[] } }> }).nftables.find((e) => e.set)?.set;
  return (set?.elem ?? []).filter((e): e is number => typeof e === 'number').sort((a, b) => a - b);
}

export async function addRedirect(table: string, port: number): Promise<void> {
  await run('nft', ['add', 'element', 'ip', table, 'sleeping_ports', `{ ${port} }`]);
}

export interface ActivatorUnderTest {
  readonly process: ServiceProcess;
  readonly env: Record<string, string>;
  readonly metricsPort: number;
}

/** Starts a socket activator; nftables mode gets the given table and a free listen port. */
export async function startActivator(sys: TestSystem, overrides: Record<string, string>): Promise<ActivatorUnderTest> {
  const env = {
    ACTIVATOR_LISTEN_PORT: String(await freePort()),
    ACTIVATOR_METRICS_PORT: String(await freePort()),
    ACTIVATOR_PROBE_SETTLE_MS: '10',
    ...overrides,
  };
  const process = await sys.start('socket-activator', env);
  return { process, env, metricsPort: Number(env.ACTIVATOR_METRICS_PORT) };
}

/** activator.req.state; retried while the endpoint of a just-started activator is not subscribed yet. */
export async function activatorState(nc: NatsConnection): Promise<any> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await natsRequest<any>(nc, 'activator.req.state', {});
    } catch (err) {
      if (attempt >= 20 || !/no responders/i.test(String((err as Error).cause ?? err))) throw err;
      await sleep(100);
    }
  }
}

/** The value of one Prometheus sample (0 when the series does not exist yet). */
export async function metricValue(metricsPort: number, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (want.every((w) => line.includes(w))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

export interface AppNode {
  tenantId: string;
  poolId: string;
  nodeId: string;
  /** The host port of the node's `control` port (the exit-node image's HTTP server on 8000). */
  hostPort: number;
  ports: Array<{ name: string; containerPort: number; hostIp: string; hostPort: number }>;
}

/** An app pool of one node running the exit-node image (HTTP on 8000), created through the API. */
export async function createAppPool(sys: TestSystem, nc: NatsConnection, name: string, image = EXIT_NODE_IMAGE): Promise<AppNode> {
  const placed = await sys.http('POST', '/v1/orders', {
    body: { type: 'pool.create', pool: { name, kind: 'app', image, nodes: { min: 1, max: 1 }, ports: [{ name: 'control', containerPort: 8000 }] } },
  });
  expect(placed.status, JSON.stringify(placed.body)).toBe(202);
  const order = await sys.waitForOrder(placed.body.id, ['fulfilled', 'failed'], { timeoutMs: 60_000 });
  expect(order.status, JSON.stringify(order)).toBe('fulfilled');
  const node = await nodeView(nc, order.result.nodeIds[0]);
  const control = node.ports.find((p: { name: string }) => p.name === 'control');
  expect(control, JSON.stringify(node)).toBeDefined();
  // Running is not listening yet: the app inside takes a moment.
  await waitHealthy(control.hostPort);
  return { tenantId: node.tenantId, poolId: node.poolId, nodeId: node.nodeId, hostPort: control.hostPort, ports: node.ports };
}

export async function nodeView(nc: NatsConnection, nodeId: string): Promise<any> {
  const snapshot = await natsRequest<{ nodes: any[] }>(nc, 'pool.req.snapshot', {}, 5000);
  const node = snapshot.nodes.find((n) => n.nodeId === nodeId);
  expect(node, `node ${nodeId} in the snapshot`).toBeDefined();
  return node;
}

export async function waitForStatus(nc: NatsConnection, nodeId: string, status: string, timeoutMs = 30_000): Promise<any> {
  return eventually(
    () => nodeView(nc, nodeId),
    (node) => node.status === status,
    timeoutMs,
    `node ${nodeId} ${status}`,
    { intervalMs: 100 },
  );
}

/**
 * What the sleep controller does to put a node to sleep: arm the activator's catch, and only
 * then send node.cmd.sleep; resolves once the node is asleep.
 */
export async function armAndSleep(nc: NatsConnection, node: AppNode, probe = { probeIntervalMs: 30, probeTimeoutMs: 10_000 }): Promise<void> {
  const reply = await natsRequest<{ ok: boolean; error?: string }>(nc, 'activator.req.arm', {
    tenantId: node.tenantId,
    poolId: node.poolId,
    nodeId: node.nodeId,
    ports: node.ports,
    ...probe,
  });
  expect(reply, JSON.stringify(reply)).toEqual({ ok: true });
  await jetstream(nc).publish('node.cmd.sleep', JSON.stringify({ tenantId: node.tenantId, nodeId: node.nodeId, reason: 'test' }));
  const asleep = await waitForStatus(nc, node.nodeId, 'sleeping');
  // Stable ports: the sleeping node is still reached where it was.
  expect(asleep.ports).toEqual(node.ports);
}

export interface RawResponse {
  data: string;
  /** end: the server closed with a FIN; error: the connection was refused or reset. */
  how: 'end' | 'error';
  error?: string;
  ms: number;
}

/** One HTTP/1.0 GET over a fresh TCP connection, no retry: what a client sees, byte for byte. */
export function rawGet(port: number, path = '/healthz', timeoutMs = 15_000): Promise<RawResponse> {
  const began = performance.now();
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    const done = (how: 'end' | 'error', error?: string) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ data, how, ...(error ? { error } : {}), ms: performance.now() - began });
    };
    const timer = setTimeout(() => done('error', `no answer within ${timeoutMs} ms`), timeoutMs);
    socket.on('data', (d) => (data += d));
    socket.once('end', () => done('end'));
    socket.once('error', (err) => done('error', err.message));
    socket.write(`GET ${path} HTTP/1.0\r\nHost: node\r\n\r\n`);
  });
}

const HEALTHY = /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nok$/;

export async function waitHealthy(port: number, timeoutMs = 15_000): Promise<void> {
  await eventually(
    () => rawGet(port, '/healthz', 2000),
    (r) => r.how === 'end' && HEALTHY.test(r.data),
    timeoutMs,
    `127.0.0.1:${port} answering /healthz`,
    { intervalMs: 50 },
  );
}

export function expectHealthy(r: RawResponse): void {
  expect(r.how, JSON.stringify(r)).toBe('end');
  expect(r.data, JSON.stringify(r)).toMatch(HEALTHY);
}
