import { spawn } from 'node:child_process';
import { request } from 'node:http';
import type { NatsConnection } from '@nats-io/transport-node';
import type { ActivatorMode, CatchView, NodeView, ReplyOf, SleepPolicyInput } from '@switchyard/contracts';
import { deleteNftTable, nftTableName, redirectedPorts } from './activator.js';
import { eventually } from './async.js';
import { natsRequest, watchSubjects, type SubjectWatch } from './exit-pool.js';
import { freePort } from './net.js';
import type { ServiceProcess } from './processes.js';
import { startTestSystem, type HttpResult, type TestSystem } from './system.js';

export const MODES: readonly ActivatorMode[] = ['nftables', 'proxy'];

/** What a scale-to-zero test watches: sleeps, wakes, policy changes and node life. */
export const SCALE_TO_ZERO_SUBJECTS = [
  'sleep.evt.slept',
  'sleep.evt.policy',
  'activator.evt.woke',
  'activator.evt.failed',
  'node.evt.started',
  'node.evt.stopped',
  'order.evt.failed',
];

export interface AppPoolInput {
  name: string;
  image: string;
  containerPort: number;
  /** Name of the one port; "main" unless given. */
  portName?: string;
  nodes?: number;
  env?: Record<string, string>;
  /** The load balancer's TCP port for the pool. */
  publicPort?: number;
  /** The pool's tags, as ACL policies name them (`tag:web`). */
  tags?: string[];
}

/**
 * A Switchyard with everything scale to zero needs: api-gateway, exit-node-manager (stats
 * every 500 ms, so idle windows of a few seconds can be judged), sleep-controller and
 * socket-activator in one mode. In nftables mode the activator gets a table of this system's
 * own, deleted on close.
 */
export interface ScaleToZero {
  readonly sys: TestSystem;
  readonly nc: NatsConnection;
  readonly watch: SubjectWatch;
  readonly tenantId: string;
  readonly mode: ActivatorMode;
  /** The activator's nftables table (nftables mode; unused in proxy mode). */
  readonly nftTable: string;
  /** Starts another activator with the same settings (after the first one was stopped). */
  startActivator(): Promise<ServiceProcess>;
  /** Places a pool.create order for an app pool on the bridge network and waits until it is fulfilled. */
  createAppPool(input: AppPoolInput): Promise<{ poolId: string; nodeIds: string[] }>;
  /** PUT /v1/pools/{id}/sleep; when accepted, waits until sleep-controller announced the new policy. */
  setSleepPolicy(poolId: string, input: SleepPolicyInput): Promise<HttpResult>;
  /** POST /v1/nodes/{id}/sleep, then waits until the order is fulfilled, the node sleeps and its catch is armed. */
  sleepNow(nodeId: string): Promise<void>;
  /** Waits until the sleep controller put a node to sleep for being idle and its catch is armed; resolves with when it slept. */
  sleptWhenIdle(nodeId: string, timeoutMs?: number): Promise<number>;
  node(nodeId: string): Promise<NodeView | undefined>;
  waitForNodeStatus(nodeId: string, status: string, timeoutMs: number): Promise<NodeView>;
  catchState(): Promise<ReplyOf<'activator.req.state'>>;
  waitForCatch(nodeId: string, state: CatchView['state'], timeoutMs: number): Promise<CatchView>;
  /** The port a client connects to for a node: its host port (nftables) or the activator's public port (proxy). */
  endpoint(nodeId: string, portName?: string): Promise<number>;
  /** nftables mode: the ports in the kernel's redirect set, read with `nft`, not from the activator. */
  redirectedPorts(): Promise<number[]>;
  close(): Promise<void>;
}

export async function startScaleToZero(mode: ActivatorMode, opts: { activatorEnv?: Record<string, string> } = {}): Promise<ScaleToZero> {
  const nftTable = nftTableName();
  const activatorEnv = {
    ACTIVATOR_MODE: mode,
    ACTIVATOR_LISTEN_HOST: '127.0.0.1',
    ACTIVATOR_LISTEN_PORT: String(await freePort()),
    ACTIVATOR_NFT_TABLE: nftTable,
    ACTIVATOR_METRICS_PORT: '0',
    ...opts.activatorEnv,
  };
  const sys = await startTestSystem();
  const closeAll = async () => {
    try {
      await sys.close();
    } finally {
      if (mode === 'nftables') await deleteNftTable(nftTable);
    }
  };
  try {
    const nc = await sys.natsClient();
    const watch = watchSubjects(nc, SCALE_TO_ZERO_SUBJECTS);
    await sys.start('api-gateway');
    await sys.start('exit-node-manager', { STATS_INTERVAL_MS: '500' });
    await sys.start('socket-activator', activatorEnv);
    await sys.start('sleep-controller');
    const [admin] = await sys.db.query<{ id: string }>("select id from tenants where name = 'admin'");
    if (!admin) throw new Error('the admin tenant was not created');
    return makeHandle({ sys, nc, watch, tenantId: admin.id, mode, nftTable, activatorEnv, closeAll });
  } catch (err) {
    await closeAll();
    throw err;
  }
}

function makeHandle(h: {
  sys: TestSystem;
  nc: NatsConnection;
  watch: SubjectWatch;
  tenantId: string;
  mode: ActivatorMode;
  nftTable: string;
  activatorEnv: Record<string, string>;
  closeAll: () => Promise<void>;
}): ScaleToZero {
  const { sys, nc, tenantId } = h;

  const node = async (nodeId: string) => {
    const reply = await natsRequest<ReplyOf<'node.req.list'>>(nc, 'node.req.list', { tenantId, nodeId });
    return reply.nodes[0];
  };
  const catchState = () => natsRequest<ReplyOf<'activator.req.state'>>(nc, 'activator.req.state', { tenantId });

  const waitForNodeStatus = async (nodeId: string, status: string, timeoutMs: number) => {
    let last: NodeView | undefined;
    const read = async () => (last = await node(nodeId).catch(() => last));
    return (await eventually(read, (n) => n?.status === status, timeoutMs, `node ${nodeId} ${status}`, { intervalMs: 100 }))!;
  };

  const waitForCatch = async (nodeId: string, state: CatchView['state'], timeoutMs: number) => {
    let last: CatchView | undefined;
    const read = async () => (last = (await catchState().catch(() => undefined))?.nodes.find((n) => n.nodeId === nodeId) ?? last);
    return (await eventually(read, (c) => c?.state === state, timeoutMs, `the activator seeing node ${nodeId} ${state}`, { intervalMs: 50 }))!;
  };

  return {
    sys,
    nc,
    watch: h.watch,
    tenantId,
    mode: h.mode,
    nftTable: h.nftTable,
    startActivator: () => sys.start('socket-activator', h.activatorEnv),
    async createAppPool(input) {
      const placed = await sys.http('POST', '/v1/orders', {
        body: {
          type: 'pool.create',
          pool: {
            name: input.name,
            kind: 'app',
            image: input.image,
            network: 'bridge',
            nodes: { min: input.nodes ?? 1, max: input.nodes ?? 1 },
            ports: [{ name: input.portName ?? 'main', containerPort: input.containerPort }],
            ...(input.env ? { env: input.env } : {}),
            ...(input.publicPort ? { publicPort: input.publicPort } : {}),
            ...(input.tags ? { tags: input.tags } : {}),
          },
        },
      });
      if (placed.status !== 202) throw new Error(`pool order refused: ${placed.status} ${JSON.stringify(placed.body)}`);
      const order = await sys.waitForOrder(placed.body.id, ['fulfilled', 'failed'], { timeoutMs: 60_000 });
      if (order.status !== 'fulfilled') throw new Error(`pool order failed: ${order.reason}`);
      return { poolId: order.result.poolId, nodeIds: order.result.nodeIds };
    },
    async setSleepPolicy(poolId, input) {
      const since = Date.now();
      const res = await sys.http('PUT', `/v1/pools/${poolId}/sleep`, { body: input });
      if (res.status >= 200 && res.status < 300) {
        await h.watch.next(
          (m) =>
            m.subject === 'sleep.evt.policy' &&
            m.data.poolId === poolId &&
            m.at >= since &&
            m.data.policy.enabled === input.enabled &&
            (input.idleWindowSec === undefined || m.data.policy.idleWindowSec === input.idleWindowSec),
          15_000,
        );
      }
      return res;
    },
    async sleepNow(nodeId) {
      const res = await sys.http('POST', `/v1/nodes/${nodeId}/sleep`);
      if (res.status !== 202) throw new Error(`sleep of node ${nodeId} refused: ${res.status} ${JSON.stringify(res.body)}`);
      const order = await sys.waitForOrder(res.body.id, ['fulfilled', 'failed'], { timeoutMs: 30_000 });
      if (order.status !== 'fulfilled') throw new Error(`sleep order of node ${nodeId} failed: ${order.reason}`);
      await waitForNodeStatus(nodeId, 'sleeping', 15_000);
      await waitForCatch(nodeId, 'armed', 5_000);
    },
    async sleptWhenIdle(nodeId, timeoutMs = 30_000) {
      const slept = await h.watch.next((m) => m.subject === 'sleep.evt.slept' && m.data.nodeId === nodeId, timeoutMs);
      if (!/idle/.test(slept.data.reason)) throw new Error(`node ${nodeId} slept, but not for being idle: ${slept.data.reason}`);
      await waitForNodeStatus(nodeId, 'sleeping', 10_000);
      await waitForCatch(nodeId, 'armed', 5_000);
      return slept.at;
    },
    node,
    waitForNodeStatus,
    catchState,
    waitForCatch,
    async endpoint(nodeId, portName = 'main') {
      if (h.mode === 'nftables') {
        const port = (await node(nodeId))?.ports.find((p) => p.name === portName);
        if (!port) throw new Error(`node ${nodeId} has no port ${portName}`);
        return port.hostPort;
      }
      // The activator learns every node from the snapshot and node events, awake or not.
      const read = async () => (await catchState().catch(() => undefined))?.nodes.find((n) => n.nodeId === nodeId)?.ports.find((p) => p.name === portName)?.publicPort;
      const publicPort = await eventually(read, Boolean, 10_000, 'a public port', { intervalMs: 50, returnLast: true });
      if (!publicPort) throw new Error(`the activator has no public port for node ${nodeId} port ${portName}`);
      return publicPort;
    },
    redirectedPorts: () => redirectedPorts(h.nftTable),
    close: h.closeAll,
  };
}

export interface HttpAnswer {
  status: number;
  body: Buffer;
  /** From the request until the whole body arrived. */
  ms: number;
}

/**
 * One GET on a connection of its own (no agent), bounded in time; rejects on any error.
 * `localAddress`: the loopback address the client connects from (an ACL policy's source).
 */
export function httpGet(port: number, path: string, timeoutMs: number, opts: { localAddress?: string } = {}): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', agent: false, timeout: timeoutMs, ...opts }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), ms: performance.now() - t0 }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no complete answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

export interface ClientRun {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a real client binary once (no retry of ours), killed after `timeoutMs`. */
export function runClient(command: string, args: string[], timeoutMs: number): Promise<ClientRun> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}
