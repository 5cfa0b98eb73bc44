import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Payload } from '@switchyard/contracts';
import { Activator, type ActivatorEdges, type CatchTarget } from '../src/activator.js';
import type { CatchStore, NodeCatch, Redirects } from '../src/catches.js';
import { release } from '../src/forward.js';
import { noMetrics } from '../src/metrics.js';

const TENANT = '00000000-0000-4000-8000-000000000001';
const POOL = '00000000-0000-4000-8000-0000000000aa';
const NODE = '00000000-0000-4000-8000-0000000000b1';
const OTHER = '00000000-0000-4000-8000-0000000000b2';
const PORT = 41001;

const silent = { debug: () => {}, info: () => {}, warn: () => {} };

/** The edges of an activator, faked: a node that is "up" or not, and a log of what happened in which order. */
function harness(
  opts: {
    probeTimeoutMs?: number;
    probeIntervalMs?: number;
    rows?: NodeCatch[];
    managerFulfils?: boolean;
    /** How long the "node" takes to answer a forwarded connection; `null`: it never does. */
    answerAfterMs?: number | null;
    /** The "node" turns every forwarded connection away after this long instead (a probe fooled by the userland proxy). */
    turnAwayAfterMs?: number;
    disarmWaitMs?: number;
    /** The tenant's ACL policy on each connection; absent: every connection passes. */
    admit?: ActivatorEdges['admit'];
  } = {},
) {
  const calls: string[] = [];
  const wakes: string[] = [];
  const woke: Array<Payload<'activator.evt.woke'>> = [];
  const failed: Array<Payload<'activator.evt.failed'>> = [];
  const probes: number[] = [];
  const forwarded: Socket[] = [];
  const rows = new Map<string, NodeCatch>((opts.rows ?? []).map((r) => [r.nodeId, r]));
  const set = new Set<number>();
  let up = false;
  const store: CatchStore = {
    load: async () => [...rows.values()].map((r) => structuredClone(r)),
    save: async (c) => {
      calls.push(`save:${c.armed ? 'armed' : 'disarmed'}`);
      rows.set(c.nodeId, structuredClone(c));
    },
    forget: async (_t, nodeId) => {
      calls.push('forget');
      rows.delete(nodeId);
    },
  };
  const redirects: Redirects = {
    add: async (ports) => {
      calls.push(`add:${ports.join(',')}`);
      for (const p of ports) set.add(p);
    },
    remove: async (ports) => {
      calls.push(`remove:${ports.join(',')}`);
      for (const p of ports) set.delete(p);
    },
    replace: async (ports) => {
      calls.push(`replace:${ports.join(',')}`);
      set.clear();
      for (const p of ports) set.add(p);
    },
    ports: () => [...set].sort(),
  };
  const edges: ActivatorEdges = {
    mode: 'nftables',
    listenPort: 9700,
    nodeHost: '127.0.0.1',
    store,
    redirects,
    // exit-node-manager carries out the wake order at once, unless the test plays it.
    requestWake: async (_c, orderId) => {
      calls.push('wake');
      wakes.push(orderId);
      if (opts.managerFulfils !== false) setImmediate(() => void activator.orderFulfilled({ orderId, tenantId: TENANT, result: { nodeIds: [NODE] } }));
    },
    probe: async () => {
      calls.push('probe');
      probes.push(performance.now());
      return up;
    },
    // The "node" answers every forwarded connection with one line and a FIN.
    forward: (socket, hostPort, { onFirstByte, onTurnedAway }) => {
      calls.push(`forward:${hostPort}`);
      socket.resume();
      forwarded.push(socket);
      const answer = () => {
        onFirstByte();
        socket.end(`answer from ${hostPort}\n`);
      };
      if (opts.turnAwayAfterMs !== undefined)
        setTimeout(() => {
          calls.push('turned-away');
          socket.end();
          onTurnedAway?.();
        }, opts.turnAwayAfterMs);
      else if (opts.answerAfterMs === undefined) answer();
      else if (opts.answerAfterMs !== null)
        setTimeout(() => {
          calls.push('first-byte');
          answer();
        }, opts.answerAfterMs);
    },
    release: (socket) => {
      calls.push('release');
      release(socket);
    },
    woke: async (e) => {
      calls.push('woke');
      woke.push(e);
    },
    failed: async (e) => void failed.push(e),
    metrics: noMetrics,
    log: silent,
    firstByteWaitMs: 200,
    ...(opts.disarmWaitMs !== undefined ? { disarmWaitMs: opts.disarmWaitMs } : {}),
    ...(opts.admit ? { admit: opts.admit } : {}),
  };
  const activator = new Activator(edges);
  return {
    activator,
    calls,
    wakes,
    woke,
    failed,
    probes,
    forwarded,
    rows,
    set,
    nodeUp: (v: boolean) => void (up = v),
    /** Arms the node's catch; then, unless told otherwise, exit-node-manager reports it stopped, as after a sleep. */
    arm: async (nodeId = NODE, hostPort = PORT, { stopped = true } = {}) => {
      const reply = await activator.arm({
        tenantId: TENANT,
        poolId: POOL,
        nodeId,
        ports: [{ name: 'web', containerPort: 80, hostIp: '127.0.0.1', hostPort }],
        probeIntervalMs: opts.probeIntervalMs ?? 10,
        probeTimeoutMs: opts.probeTimeoutMs ?? 2000,
      });
      if (stopped) await activator.nodeStopped({ tenantId: TENANT, poolId: POOL, nodeId, at: new Date().toISOString(), containerId: 'c', reason: 'sleep' });
      return reply;
    },
  };
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

/** A loopback listener whose connections go to the activator as if redirected from `target`. */
async function front(activator: Activator, target: CatchTarget): Promise<number> {
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => activator.accept(s, target));
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as { port: number }).port;
}

interface ClientResult {
  data: string;
  /** How the connection ended: 'end' = FIN from the other side; 'error' = reset or refused. */
  how: 'end' | 'error';
}
/** Connects, sends a request, and collects everything until the other side ends. */
function client(port: number): { socket: Socket; result: Promise<ClientResult> } {
  const socket = connect(port, '127.0.0.1');
  socket.write('GET / HTTP/1.0\r\n\r\n');
  let data = '';
  socket.on('data', (d) => (data += d));
  const result = new Promise<ClientResult>((resolve) => {
    socket.once('end', () => {
      resolve({ data, how: 'end' });
      socket.end();
    });
    socket.once('error', () => resolve({ data, how: 'error' }));
  });
  return { socket, result };
}

async function until(cond: () => boolean, what: string, timeoutMs = 2000): Promise<void> {
  await vi.waitFor(
    () => {
      if (!cond()) throw new Error(`timed out waiting for ${what}`);
    },
    { timeout: timeoutMs, interval: 5 },
  );
}

const stateOf = (a: Activator, nodeId = NODE) => a.state({}).nodes.find((n) => n.nodeId === nodeId)?.state;

describe('ACL policy', () => {
  it('lets a denied connection go before anything is held or woken, and wakes for an allowed one', async () => {
    const asked: Array<[string, string | undefined, number]> = [];
    let allowed = false;
    const h = harness({
      admit: (c, client, port) => {
        asked.push([c.nodeId, client, port]);
        return client === '127.0.0.1' && allowed ? 'allowed' : 'denied';
      },
    });
    await h.arm();
    const port = await front(h.activator, { hostPort: PORT });
    const denied = await client(port).result;
    expect(denied).toEqual({ data: '', how: 'end' });
    expect([h.wakes, stateOf(h.activator), h.set.has(PORT)]).toEqual([[], 'armed', true]);
    expect(h.calls).not.toContain('forward:41001');

    allowed = true;
    h.nodeUp(true);
    expect(await client(port).result).toEqual({ data: `answer from ${PORT}\n`, how: 'end' });
    expect(h.wakes).toHaveLength(1);
    // The port judged is the one the client dialled: the node's caught host port.
    expect(asked).toEqual([
      [NODE, '127.0.0.1', PORT],
      [NODE, '127.0.0.1', PORT],
    ]);
  });

  it('judges a connection that arrives during a wake, and one for an awake node, too', async () => {
    let verdict: 'allowed' | 'denied' | 'unknown' = 'allowed';
    const h = harness({ admit: () => verdict });
    await h.arm();
    const port = await front(h.activator, { hostPort: PORT });
    const first = client(port);
    await until(() => stateOf(h.activator) === 'waking', 'the wake');
    verdict = 'unknown';
    expect(await client(port).result).toEqual({ data: '', how: 'end' });
    verdict = 'allowed';
    h.nodeUp(true);
    expect((await first.result).how).toBe('end');
    await until(() => stateOf(h.activator) === 'awake', 'awake');
    verdict = 'denied';
    expect(await client(port).result).toEqual({ data: '', how: 'end' });
    expect(h.calls.filter((c) => c.startsWith('forward')).length).toBe(1);
    expect(h.woke[0]).toMatchObject({ heldConnections: 1 });
  });
});

describe('hold and wake', () => {
  it('asks for the wake at once, collapses concurrent catches into one wake, and answers every held connection', async () => {
    const h = harness();
    expect(await h.arm()).toEqual({ ok: true });
    expect(h.set.has(PORT)).toBe(true);
    const port = await front(h.activator, { hostPort: PORT });

    const clients = Array.from({ length: 20 }, () => client(port));
    await until(() => h.activator.state({}).nodes[0]?.state === 'waking', 'the wake');
    expect(h.wakes).toHaveLength(1);
    await sleep(60);
    // The wake order left before the first probe.
    expect(h.calls.indexOf('wake')).toBeLessThan(h.calls.indexOf('probe'));
    expect(h.probes.length).toBeGreaterThan(1);
    expect(h.wakes).toHaveLength(1);

    h.nodeUp(true);
    const results = await Promise.all(clients.map((c) => c.result));
    for (const r of results) expect(r).toEqual({ data: `answer from ${PORT}\n`, how: 'end' });
    await until(() => h.woke.length === 1, 'the woke event');
    expect(h.woke[0]).toMatchObject({ nodeId: NODE, trigger: 'connection', mode: 'nftables', heldConnections: 20 });
    expect(h.woke[0]!.firstByteMs).toBeGreaterThanOrEqual(h.woke[0]!.readyMs);
    expect(h.wakes).toHaveLength(1);
    expect(stateOf(h.activator)).toBe('awake');
  });

  it('probes only once exit-node-manager started the node for the wake: until then it may still run, about to be stopped', async () => {
    const h = harness({ managerFulfils: false });
    await h.arm(NODE, PORT, { stopped: false });
    h.nodeUp(true); // still running: the sleep is on its way
    const port = await front(h.activator, { hostPort: PORT });
    const c = client(port);
    await until(() => h.wakes.length === 1, 'the wake');
    await sleep(60);
    expect(h.probes).toHaveLength(0);
    expect(stateOf(h.activator)).toBe('waking');

    // exit-node-manager stops it (the sleep), then starts it (the wake that follows).
    await h.activator.nodeStopped({ tenantId: TENANT, poolId: POOL, nodeId: NODE, at: new Date().toISOString(), containerId: 'c', reason: 'sleep' });
    await sleep(30);
    expect(h.probes).toHaveLength(0);
    await h.activator.nodeStarted({ tenantId: TENANT, poolId: POOL, nodeId: NODE, at: new Date().toISOString(), containerId: 'c', ports: [], startMs: 1 });
    expect(await c.result).toEqual({ data: `answer from ${PORT}\n`, how: 'end' });
    expect(h.probes.length).toBeGreaterThan(0);
    expect(h.wakes).toHaveLength(1);
  });

  it('probes the moment exit-node-manager reports the node started, not at the next tick', async () => {
    const h = harness({ managerFulfils: false, probeIntervalMs: 1000 });
    await h.arm();
    const port = await front(h.activator, { hostPort: PORT });
    const c = client(port);
    await until(() => h.wakes.length === 1, 'the wake');
    h.nodeUp(true);
    const startedAt = performance.now();
    await h.activator.nodeStarted({ tenantId: TENANT, poolId: POOL, nodeId: NODE, at: new Date().toISOString(), containerId: 'c', ports: [], startMs: 1 });
    expect(await c.result).toEqual({ data: `answer from ${PORT}\n`, how: 'end' });
    // One attempt, made well before the tick a second away.
    expect(h.probes).toHaveLength(1);
    expect(h.probes[0]! - startedAt).toBeLessThan(500);
    // The order fulfilled after the start does not probe again.
    await h.activator.orderFulfilled({ orderId: h.wakes[0]!, tenantId: TENANT, result: { nodeIds: [NODE] } });
    expect(h.probes).toHaveLength(1);
  });

  it('arms a node put to sleep while not armed again, and disarms one an operator stopped', async () => {
    const h = harness();
    await h.arm();
    await h.activator.nodeStarted({ tenantId: TENANT, poolId: POOL, nodeId: NODE, at: new Date(Date.now() + 5).toISOString(), containerId: 'c', ports: [], startMs: 1 });
    h.nodeUp(true);
    await until(() => stateOf(h.activator) === 'awake', 'the manual wake');
    expect(h.set.has(PORT)).toBe(false);
    await h.activator.nodeStopped({ tenantId: TENANT, poolId: POOL, nodeId: NODE, at: new Date().toISOString(), containerId: 'c', reason: 'sleep' });
    expect(stateOf(h.activator)).toBe('armed');
    expect(h.set.has(PORT)).toBe(true);
    await h.activator.nodeStopped({ tenantId: TENANT, poolId: POOL, nodeId: NODE, at: new Date().toISOString(), containerId: 'c', reason: 'stop' });
    expect(stateOf(h.activator)).toBe('awake');
    expect(h.set.has(PORT)).toBe(false);
  });

  it('refuses to arm a port published on another address than the one it catches', async () => {
    const h = harness();
    const reply = await h.activator.arm({
      tenantId: TENANT,
      poolId: POOL,
      nodeId: NODE,
      ports: [{ name: 'web', containerPort: 80, hostIp: '10.0.0.5', hostPort: PORT }],
      probeIntervalMs: 10,
      probeTimeoutMs: 1000,
    });
    expect(reply).toEqual({ ok: false, error: 'port web is published on 10.0.0.5; this activator catches 127.0.0.1 only' });
    expect(h.set.size).toBe(0);
  });

  it('waits for Docker to report a node with a HEALTHCHECK of its own healthy before it forwards', async () => {
    const h = harness({ managerFulfils: false });
    await h.arm();
    const port = await front(h.activator, { hostPort: PORT });
    const c = client(port);
    await until(() => h.wakes.length === 1, 'the wake');
    h.nodeUp(true); // the port accepts, but the server does not take sessions yet
    await h.activator.nodeStarted({ tenantId: TENANT, poolId: POOL, nodeId: NODE, at: new Date().toISOString(), containerId: 'c', ports: [], startMs: 1, healthcheck: true });
    await sleep(60);
    expect(h.probes).toHaveLength(0);
    expect(stateOf(h.activator)).toBe('waking');
    await h.activator.nodeHealth({ tenantId: TENANT, poolId: POOL, nodeId: NODE, at: new Date().toISOString(), containerId: 'c', status: 'healthy' });
    expect(await c.result).toEqual({ data: `answer from ${PORT}\n`, how: 'end' });
  });

  it('also probes once the wake order is fulfilled (a node found running publishes no start)', async () => {
    const h = harness({ managerFulfils: false });
    await h.arm();
    const port = await front(h.activator, { hostPort: PORT });
    const c = client(port);
    await until(() => h.wakes.length === 1, 'the wake');
    h.nodeUp(true);
    await sleep(40);
    expect(h.probes).toHaveLength(0);
    await h.activator.orderFulfilled({ orderId: h.wakes[0]!, tenantId: TENANT, result: { nodeIds: [NODE] } });
    expect((await c.result).how).toBe('end');
    expect(h.probes.length).toBeGreaterThan(0);
  });

  it('forwards the held connections as soon as the node is ready, then takes its ports out of the set and stores the catch disarmed', async () => {
    const h = harness();
    await h.arm();
    const port = await front(h.activator, { hostPort: PORT });
    const c = client(port);
    await until(() => h.wakes.length === 1, 'the wake');
    h.nodeUp(true);
    expect((await c.result).how).toBe('end');
    await until(() => stateOf(h.activator) === 'awake', 'the disarm');
    expect(h.calls.indexOf(`forward:${PORT}`)).toBeGreaterThan(h.calls.indexOf('wake'));
    expect(h.calls.indexOf(`forward:${PORT}`)).toBeLessThan(h.calls.indexOf(`remove:${PORT}`));
    expect(h.set.has(PORT)).toBe(false);
    expect(h.rows.get(NODE)?.armed).toBe(false);
  });

  it('takes the ports out of the set once the node answered a held connection; until then later connections are forwarded at once', async () => {
    const h = harness({ answerAfterMs: 80, disarmWaitMs: 5000 });
    await h.arm();
    const port = await front(h.activator, { hostPort: PORT });
    const first = client(port);
    await until(() => h.wakes.length === 1, 'the wake');
    h.nodeUp(true);
    await until(() => h.calls.includes(`forward:${PORT}`), 'the forward');
    expect(h.set.has(PORT)).toBe(true);
    // Caught while the node is ready and its ports still in the set: forwarded, not held.
    const later = client(port);
    await until(() => h.calls.filter((c) => c === `forward:${PORT}`).length === 2, 'the second forward');
    expect(h.calls).not.toContain('first-byte');
    expect(await first.result).toEqual({ data: `answer from ${PORT}\n`, how: 'end' });
    expect(await later.result).toEqual({ data: `answer from ${PORT}\n`, how: 'end' });
    await until(() => stateOf(h.activator) === 'awake', 'the disarm');
    expect(h.calls.indexOf('first-byte')).toBeLessThan(h.calls.indexOf(`remove:${PORT}`));
    expect(h.set.has(PORT)).toBe(false);
    expect(h.wakes).toHaveLength(1);
    // Told once out of the path, with the time to the first byte.
    await until(() => h.woke.length === 1, 'the woke event');
    expect(h.calls.indexOf('woke')).toBeGreaterThan(h.calls.indexOf(`remove:${PORT}`));
    expect(h.woke[0]!.firstByteMs).toBeGreaterThanOrEqual(h.woke[0]!.readyMs + 70);
  });

  it('takes the ports out of the set after a bound when the node answers no held connection, and reports the wake without a first byte', async () => {
    const h = harness({ answerAfterMs: null, disarmWaitMs: 50 });
    await h.arm();
    const port = await front(h.activator, { hostPort: PORT });
    const c = client(port);
    await until(() => h.wakes.length === 1, 'the wake');
    h.nodeUp(true);
    await until(() => stateOf(h.activator) === 'awake', 'the disarm', 1000);
    expect(h.calls).not.toContain('first-byte');
    expect(h.set.has(PORT)).toBe(false);
    // The woke event waits its own bound for a first byte, then goes without one.
    await until(() => h.woke.length === 1, 'the woke event', 1000);
    expect(h.woke[0]!.firstByteMs).toBeUndefined();
    c.socket.destroy();
    for (const socket of h.forwarded) socket.destroy();
  });

  it('fails a wake whose probe passed but whose held connections the node all turned away, and keeps the node armed', async () => {
    const h = harness({ turnAwayAfterMs: 30, disarmWaitMs: 5000 });
    await h.arm();
    const port = await front(h.activator, { hostPort: PORT });
    const c = client(port);
    await until(() => h.wakes.length === 1, 'the wake');
    h.nodeUp(true);
    await until(() => h.failed.length === 1, 'the failed event', 1000);
    expect(h.failed[0]).toMatchObject({ nodeId: NODE, heldConnections: 1 });
    expect(h.failed[0]!.reason).toMatch(/did not accept within \d+ ms .*turned away/);
    expect(await c.result).toEqual({ data: '', how: 'end' });
    expect(h.woke).toEqual([]);
    expect(h.calls).not.toContain(`remove:${PORT}`);
    expect(stateOf(h.activator)).toBe('armed');
    // The next connection starts a new wake.
    const next = client(port);
    await until(() => h.wakes.length === 2, 'the next wake');
    next.socket.destroy();
  });

  it('arms the node again when its held connections are turned away only after the ports left the set', async () => {
    const h = harness({ turnAwayAfterMs: 120, disarmWaitMs: 20 });
    await h.arm();
    const port = await front(h.activator, { hostPort: PORT });
    const c = client(port);
    await until(() => h.wakes.length === 1, 'the wake');
    h.nodeUp(true);
    await until(() => h.calls.includes(`remove:${PORT}`), 'the disarm', 1000);
    await until(() => h.failed.length === 1, 'the failed event', 1000);
    expect(h.calls.indexOf('turned-away')).toBeGreaterThan(h.calls.indexOf(`remove:${PORT}`));
    expect(h.woke).toEqual([]);
    expect(h.set.has(PORT)).toBe(true);
    expect(stateOf(h.activator)).toBe('armed');
    expect(await c.result).toEqual({ data: '', how: 'end' });
  });

  it('forwards a connection to an awake node without a wake', async () => {
    const h = harness();
    await h.arm();
    await h.activator.nodeStarted({ tenantId: TENANT, poolId: POOL, nodeId: NODE, at: new Date(Date.now() + 1000).toISOString(), containerId: 'c', ports: [], startMs: 1 });
    h.nodeUp(true);
    await until(() => stateOf(h.activator) === 'awake', 'the manual wake');
    h.calls.length = 0;
    const port = await front(h.activator, { hostPort: PORT });
    expect(await client(port).result).toEqual({ data: `answer from ${PORT}\n`, how: 'end' });
    expect(h.calls).toEqual([`forward:${PORT}`]);
    expect(h.wakes).toHaveLength(0);
  });

  it('a failed wake order ends the held connections with a FIN, publishes activator.evt.failed, and the node stays armed', async () => {
    const h = harness();
    await h.arm();
    const port = await front(h.activator, { hostPort: PORT });
    const clients = [client(port), client(port), client(port)];
    await until(() => h.wakes.length === 1, 'the wake');
    await sleep(30);
    await h.activator.orderFailed({ orderId: h.wakes[0]!, tenantId: TENANT, reason: 'image switchyard/gone:dev is not on the host' });
    for (const r of await Promise.all(clients.map((c) => c.result))) expect(r).toEqual({ data: '', how: 'end' });
    expect(h.failed).toEqual([expect.objectContaining({ nodeId: NODE, heldConnections: 3, reason: expect.stringMatching(/image switchyard\/gone:dev/) })]);
    expect(stateOf(h.activator)).toBe('armed');
    expect(h.set.has(PORT)).toBe(true);

    // The next connection tries again, with a new order.
    h.nodeUp(true);
    expect((await client(port).result).data).toBe(`answer from ${PORT}\n`);
    expect(h.wakes).toHaveLength(2);
    expect(h.wakes[1]).not.toBe(h.wakes[0]);
  });

  it('fails the wake when the port does not accept within the probe timeout', async () => {
    const h = harness({ probeTimeoutMs: 150 });
    await h.arm();
    const port = await front(h.activator, { hostPort: PORT });
    const began = Date.now();
    expect(await client(port).result).toEqual({ data: '', how: 'end' });
    expect(Date.now() - began).toBeGreaterThanOrEqual(140);
    expect(h.failed[0]).toMatchObject({ heldConnections: 1, reason: "the node's port did not accept within 150 ms" });
    expect(stateOf(h.activator)).toBe('armed');
  });

  it('ignores the failure of an order that is not its wake', async () => {
    const h = harness();
    await h.arm();
    const port = await front(h.activator, { hostPort: PORT });
    const c = client(port);
    await until(() => h.wakes.length === 1, 'the wake');
    await h.activator.orderFailed({ orderId: '00000000-0000-4000-8000-00000000ffff', tenantId: TENANT, reason: 'other' });
    h.nodeUp(true);
    expect((await c.result).data).toBe(`answer from ${PORT}\n`);
    expect(h.failed).toEqual([]);
  });

  it('refuses to arm a node that is waking', async () => {
    const h = harness();
    await h.arm();
    const port = await front(h.activator, { hostPort: PORT });
    const c = client(port);
    await until(() => h.wakes.length === 1, 'the wake');
    expect(await h.arm()).toEqual({ ok: false, error: expect.stringMatching(/is waking/) });
    h.nodeUp(true);
    await c.result;
  });

  it('closes a redirected connection to a port no node has, and takes the port out of the set', async () => {
    const h = harness();
    await h.activator.load();
    h.set.add(41999);
    const port = await front(h.activator, { hostPort: 41999 });
    expect(await client(port).result).toEqual({ data: '', how: 'end' });
    await until(() => !h.set.has(41999), 'the removal');
    expect(h.wakes).toEqual([]);
  });
});

describe('starts the activator did not ask for', () => {
  it('probes an armed node that started, disarms it and reports a manual wake', async () => {
    const h = harness();
    await h.arm();
    h.nodeUp(true);
    await h.activator.nodeStarted({ tenantId: TENANT, poolId: POOL, nodeId: NODE, at: new Date(Date.now() + 1000).toISOString(), containerId: 'c', ports: [], startMs: 5 });
    await until(() => h.woke.length === 1, 'the woke event');
    expect(h.woke[0]).toMatchObject({ trigger: 'manual', heldConnections: 0 });
    expect(h.woke[0]!.firstByteMs).toBeUndefined();
    expect(h.set.has(PORT)).toBe(false);
    expect(h.wakes).toEqual([]);
  });

  it('ignores a start from before the node was armed', async () => {
    const h = harness();
    const before = new Date(Date.now() - 60_000).toISOString();
    await h.arm();
    await h.activator.nodeStarted({ tenantId: TENANT, poolId: POOL, nodeId: NODE, at: before, containerId: 'c', ports: [], startMs: 5 });
    await sleep(30);
    expect(stateOf(h.activator)).toBe('armed');
    expect(h.probes).toEqual([]);
  });

  it('stops waiting for a started node that stopped again, silently', async () => {
    const h = harness();
    await h.arm();
    await h.activator.nodeStarted({ tenantId: TENANT, poolId: POOL, nodeId: NODE, at: new Date(Date.now() + 1000).toISOString(), containerId: 'c', ports: [], startMs: 5 });
    expect(stateOf(h.activator)).toBe('waking');
    await h.activator.nodeStopped({ tenantId: TENANT, poolId: POOL, nodeId: NODE, at: new Date().toISOString(), containerId: 'c', reason: 'sleep' });
    expect(stateOf(h.activator)).toBe('armed');
    expect(h.failed[0]).toMatchObject({ heldConnections: 0, reason: expect.stringMatching(/stopped \(sleep\)/) });
  });
});

describe('rows, set and events', () => {
  const row = (nodeId: string, hostPort: number, armed: boolean, armedAt: Date | null): NodeCatch => ({
    tenantId: TENANT,
    poolId: POOL,
    nodeId,
    ports: [{ name: 'web', containerPort: 80, hostPort, publicPort: null }],
    armed,
    armedAt,
    probeIntervalMs: 30,
    probeTimeoutMs: 10_000,
  });
  const view = (nodeId: string, status: 'running' | 'sleeping', startedAt: Date | null) => ({
    tenantId: TENANT,
    poolId: POOL,
    nodeId,
    name: 'n',
    kind: 'app' as const,
    status,
    country: null,
    region: null,
    city: null,
    server: null,
    containerId: 'c',
    ports: [],
    startedAt: startedAt?.toISOString() ?? null,
    stats: null,
  });

  it('rebuilds the set from the armed rows at once, then disarms what ran since it was armed and forgets what is gone', async () => {
    const armedAt = new Date(Date.now() - 10_000);
    const THIRD = '00000000-0000-4000-8000-0000000000b3';
    const FOURTH = '00000000-0000-4000-8000-0000000000b4';
    const h = harness({
      rows: [row(NODE, 41001, true, armedAt), row(OTHER, 41002, true, armedAt), row(THIRD, 41003, true, armedAt), row(FOURTH, 41004, false, null)],
    });
    h.set.add(45000);
    await h.activator.load();
    expect(h.calls[0]).toBe('replace:41001,41002,41003');
    expect(h.set).toEqual(new Set([41001, 41002, 41003]));

    await h.activator.reconcile({
      pools: [],
      nodes: [
        view(NODE, 'sleeping', new Date(armedAt.getTime() - 60_000)),
        view(OTHER, 'running', new Date(armedAt.getTime() + 5000)),
        // Armed and still running: its sleep is on the way.
        view(FOURTH, 'running', new Date(armedAt.getTime() - 60_000)),
      ],
    });
    expect(h.set).toEqual(new Set([41001]));
    expect(stateOf(h.activator, NODE)).toBe('armed');
    expect(stateOf(h.activator, OTHER)).toBe('awake');
    expect(h.rows.get(OTHER)?.armed).toBe(false);
    expect(stateOf(h.activator, THIRD)).toBeUndefined();
    expect(h.rows.has(THIRD)).toBe(false);
    expect(stateOf(h.activator, FOURTH)).toBe('awake');
  });

  it('keeps an armed node that still runs from before its arm armed (its sleep is on the way)', async () => {
    const armedAt = new Date();
    const h = harness({ rows: [row(NODE, 41001, true, armedAt)] });
    await h.activator.load();
    await h.activator.reconcile({ pools: [], nodes: [view(NODE, 'running', new Date(armedAt.getTime() - 1000))] });
    expect(stateOf(h.activator)).toBe('armed');
    expect(h.set.has(41001)).toBe(true);
  });

  it('a snapshot asked for before a wake does not arm the woken node again when it arrives after', async () => {
    const h = harness();
    await h.arm();
    const askedAt = h.activator.mark();
    const port = await front(h.activator, { hostPort: PORT });
    const c = client(port);
    await until(() => h.wakes.length === 1, 'the wake');
    h.nodeUp(true);
    expect((await c.result).how).toBe('end');
    await until(() => stateOf(h.activator) === 'awake', 'the disarm');

    // What exit-node-manager said while the node still slept.
    const stale = { pools: [], nodes: [view(NODE, 'sleeping', new Date(Date.now() - 60_000))] };
    await h.activator.reconcile(stale, askedAt);
    expect([stateOf(h.activator), h.set.has(PORT)]).toEqual(['awake', false]);
    // Asked for after the wake, the same view is news: the node is armed again.
    await h.activator.reconcile(stale, h.activator.mark());
    expect([stateOf(h.activator), h.set.has(PORT)]).toEqual(['armed', true]);
  });

  it('a host port armed by another node moves to it', async () => {
    const h = harness();
    await h.arm(NODE, 41001);
    await h.arm(OTHER, 41001);
    expect(h.activator.state({}).nodes.find((n) => n.nodeId === NODE)?.ports).toEqual([]);
    const port = await front(h.activator, { hostPort: 41001 });
    const c = client(port);
    await until(() => h.wakes.length === 1, 'the wake');
    expect(stateOf(h.activator, OTHER)).toBe('waking');
    h.nodeUp(true);
    await c.result;
  });

  it('forgets a removed node: rows, set entries and a wake under way', async () => {
    const h = harness();
    await h.arm();
    const port = await front(h.activator, { hostPort: PORT });
    const c = client(port);
    await until(() => h.wakes.length === 1, 'the wake');
    await h.activator.nodeRemoved({ tenantId: TENANT, poolId: POOL, nodeId: NODE, at: new Date().toISOString(), reason: 'scaled down' });
    expect(await c.result).toEqual({ data: '', how: 'end' });
    expect(h.set.size).toBe(0);
    expect(h.rows.size).toBe(0);
    expect(h.activator.state({}).nodes).toEqual([]);
  });

  it('a policy change updates the probe settings of the pool’s catches', async () => {
    const h = harness();
    await h.arm();
    await h.activator.policyChanged({
      tenantId: TENANT,
      poolId: POOL,
      at: new Date().toISOString(),
      policy: { enabled: true, idleWindowSec: 5, minAwake: 0, probeIntervalMs: 50, probeTimeoutMs: 3000 },
    });
    expect(h.activator.state({}).nodes[0]).toMatchObject({ probeIntervalMs: 50, probeTimeoutMs: 3000 });
    expect(h.rows.get(NODE)).toMatchObject({ probeIntervalMs: 50, probeTimeoutMs: 3000 });
  });
});
