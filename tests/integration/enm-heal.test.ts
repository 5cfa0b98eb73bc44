import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, request, type Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NatsConnection } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import { createBus } from '@switchyard/bus';
import { eventually, docker, startTestSystem, type TestSystem } from '@switchyard/testkit';

// exit-node-manager on its own feet: a node killed behind its back is reported dead at once,
// restarted, and replaced when it keeps dying; stats, logs and the snapshot describe the
// nodes; node.cmd.add grows a country's pool; scale-down drains before it removes.
describe('exit-node-manager heals, samples and drains', () => {
  let sys: TestSystem;
  let nc: NatsConnection;
  let redis: Redis;
  let target: Server;
  let targetUrl: string;
  let tenantId: string;
  const seen: Array<{ subject: string; data: any; at: number }> = [];

  beforeAll(async () => {
    target = createServer((req, res) => res.writeHead(200, { 'x-via': String(req.headers['via'] ?? '') }).end('hello'));
    target.listen(0, '127.0.0.1');
    await once(target, 'listening');
    targetUrl = `http://127.0.0.1:${(target.address() as { port: number }).port}/hello`;
    sys = await startTestSystem({ services: ['api-gateway'] });
    await sys.start('exit-node-manager', { STATS_INTERVAL_MS: '300', HEAL_MAX_RESTARTS: '1', HEAL_BASE_DELAY_MS: '300' });
    nc = await sys.natsClient();
    for (const subject of ['node.evt.*', 'order.evt.*']) {
      nc.subscribe(subject, {
        callback: (err, msg) => {
          if (!err) seen.push({ subject: msg.subject, data: msg.json(), at: Date.now() });
        },
      });
    }
    redis = new Redis(process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: 1 });
    tenantId = (await sys.db.query<{ id: string }>('select id from tenants'))[0]!.id;
  });
  afterAll(async () => {
    await sys?.close();
    redis?.disconnect();
    target?.closeAllConnections();
    target?.close();
  });

  const next = async (match: (m: { subject: string; data: any }) => boolean, timeoutMs: number, after = 0) => {
    const found = await eventually(
      () => seen.slice(after).find(match),
      (m) => m !== undefined,
      timeoutMs,
      'a matching message',
      { intervalMs: 20, returnLast: true },
    );
    if (!found) throw new Error(`no matching message in ${timeoutMs} ms; last: ${JSON.stringify(seen.slice(-8).map((m) => [m.subject, m.data.nodeId]))}`);
    return found;
  };
  const ask = async <T = any>(subject: string, payload: unknown): Promise<T> => {
    const reply = await nc.request(subject, JSON.stringify(payload), { timeout: 5000 });
    const code = reply.headers?.get('Nats-Service-Error-Code');
    if (code) throw new Error(`${subject}: ${code} ${reply.headers?.get('Nats-Service-Error')}`);
    return reply.json<T>();
  };
  const order = async (body: unknown) => {
    const placed = await sys.http('POST', '/v1/orders', { body });
    expect(placed.status, JSON.stringify(placed.body)).toBe(202);
    return sys.waitForOrder(placed.body.id, ['fulfilled', 'failed'], { timeoutMs: 60_000 });
  };
  const viewOf = async (nodeId: string) => (await ask('node.req.list', { tenantId, nodeId })).nodes[0];
  // node.evt.started goes out just before the row is written.
  const runningView = async (nodeId: string) => {
    return eventually(
      () => viewOf(nodeId),
      (view) => view.status === 'running',
      3_000,
      `node ${nodeId} running`,
      { intervalMs: 50, returnLast: true },
    );
  };
  const containersOf = (nodeId: string) => docker.listContainers({ all: true, filters: { label: [`io.switchyard.node=${nodeId}`] } });
  const proxiedGet = (proxyPort: number) =>
    new Promise<{ status: number; body: string; via: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: proxyPort, path: targetUrl, agent: false, timeout: 3000 }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, via: String(res.headers['x-via'] ?? '') }));
      });
      req.on('timeout', () => req.destroy(new Error('proxy did not answer')));
      req.on('error', reject);
      req.end();
    });
  // "running" is Docker's word: the process inside may need a moment before it listens.
  const proxiedGetSoon = async (proxyPort: number) => {
    const answer = await eventually(
      () => proxiedGet(proxyPort).catch((err: Error) => err),
      (r) => !(r instanceof Error),
      5_000,
      'a proxied answer',
      { intervalMs: 50, returnLast: true },
    );
    if (answer instanceof Error) throw answer;
    return answer;
  };
  const proxyPortOf = (view: any) => view.ports.find((p: { name: string }) => p.name === 'proxy').hostPort as number;

  it('restarts a killed node, then replaces it when it dies again; the host-network proxy reaches loopback throughout', async () => {
    const created = await order({
      type: 'pool.create',
      pool: { name: 'tokyo', kind: 'exit', country: 'JP', region: 'Kanto', city: 'Tokyo', network: 'host', nodes: { min: 1, max: 1 } },
    });
    expect(created.status, created.reason).toBe('fulfilled');
    const nodeId = created.result.nodeIds[0] as string;
    const view = await viewOf(nodeId);
    expect(view).toMatchObject({ nodeId, kind: 'exit', status: 'running', country: 'JP', region: 'Kanto', city: 'Tokyo', server: null });
    expect(view.ports.map((p: any) => [p.name, p.hostIp])).toEqual([
      ['proxy', '127.0.0.1'],
      ['control', '127.0.0.1'],
    ]);
    const first = await proxiedGetSoon(proxyPortOf(view));
    expect(first).toMatchObject({ status: 200, body: 'hello' });
    expect(first.via).toContain(nodeId);
    const firstContainer = view.containerId as string;

    // Killed behind the manager's back: reported dead within a second, restarted in place.
    let mark = seen.length;
    const killedAt = Date.now();
    await docker.getContainer(firstContainer).kill();
    const died = await next((m) => m.subject === 'node.evt.died' && m.data.nodeId === nodeId, 5000, mark);
    expect(died.at - killedAt).toBeLessThan(1000);
    expect(died.data).toMatchObject({ containerId: firstContainer, exitCode: 137, oomKilled: false });
    const restarted = await next((m) => m.subject === 'node.evt.started' && m.data.nodeId === nodeId, 15_000, mark);
    expect(restarted.data.containerId).toBe(firstContainer);
    // Host ports are the node's, not the container's: the same after a restart.
    expect(restarted.data.ports).toEqual(view.ports);
    expect((await proxiedGetSoon(proxyPortOf(view))).status).toBe(200);

    // Dead again within the window after its one allowed restart: a fresh container.
    mark = seen.length;
    await docker.getContainer(firstContainer).kill();
    await next((m) => m.subject === 'node.evt.died' && m.data.nodeId === nodeId, 5000, mark);
    const replaced = await next((m) => m.subject === 'node.evt.started' && m.data.nodeId === nodeId, 20_000, mark);
    expect(replaced.data.containerId).not.toBe(firstContainer);
    expect(replaced.data.ports).toEqual(view.ports);
    expect(seen.slice(mark).some((m) => m.subject === 'node.evt.created' && m.data.containerId === replaced.data.containerId)).toBe(true);
    const containers = await containersOf(nodeId);
    expect(containers.map((c) => [c.Id, c.State])).toEqual([[replaced.data.containerId, 'running']]);
    expect((await runningView(nodeId)).status).toBe('running');
    expect((await proxiedGetSoon(proxyPortOf(view))).via).toContain(nodeId);
    expect(await redis.hget(`node:${nodeId}`, 'status')).toBe('running');
  });

  it('samples stats into redis, node.evt.stats and the node view; serves logs and the snapshot', async () => {
    const created = await order({ type: 'pool.create', pool: { name: 'oslo', kind: 'exit', country: 'NO', nodes: { min: 1, max: 1 } } });
    expect(created.status, created.reason).toBe('fulfilled');
    const nodeId = created.result.nodeIds[0] as string;
    const view = await viewOf(nodeId);
    // Bridge network: traffic through the proxy moves the container's rx/tx counters.
    await new Promise<void>((resolve) => {
      const req = request({ host: '127.0.0.1', port: proxyPortOf(view), method: 'GET', path: '/', agent: false }, (res) => res.resume().on('end', resolve));
      req.on('error', () => resolve());
      req.end();
    });

    const stats = await next((m) => m.subject === 'node.evt.stats' && m.data.nodeId === nodeId && m.data.rxPackets > 0, 15_000);
    expect(stats.data).toMatchObject({ tenantId, poolId: created.result.poolId });
    expect(stats.data.memoryMb).toBeGreaterThan(0);
    const hash = await redis.hgetall(`stats:${nodeId}`);
    expect(Object.keys(hash).sort()).toEqual(['at', 'cpuPercent', 'memoryMb', 'memoryPercent', 'rxBytes', 'rxPackets', 'txBytes', 'txPackets']);
    const withStats = await viewOf(nodeId);
    expect(withStats.stats).toMatchObject({ memoryMb: expect.any(Number), rxBytes: expect.any(Number) });
    expect(withStats.stats.rxPackets).toBeGreaterThan(0);

    const logs = await ask('node.req.logs', { tenantId, nodeId, lines: 5 });
    expect(logs.lines).toBe(logs.logs.length);
    expect(logs.logs.join('\n')).toMatch(/exit-node: http proxy on 0\.0\.0\.0:8888, control server on 0\.0\.0\.0:8000, country=NO/);
    expect(await ask('node.req.logs', { tenantId, nodeId: randomUUID(), lines: 5 })).toEqual({ logs: null, lines: 0 });
    expect(await ask('node.req.logs', { tenantId: randomUUID(), nodeId, lines: 5 })).toEqual({ logs: null, lines: 0 });

    // A second pool of this test's own (empty: only its listing matters), not another test's.
    const empty = await order({ type: 'pool.create', pool: { name: 'stockholm', kind: 'exit', country: 'SE', nodes: { min: 0, max: 1 } } });
    expect(empty.status, empty.reason).toBe('fulfilled');
    const snapshot = await ask('pool.req.snapshot', {});
    expect(snapshot.pools.map((p: any) => p.name)).toEqual(expect.arrayContaining(['oslo', 'stockholm']));
    expect(snapshot.nodes.find((n: any) => n.nodeId === nodeId)).toMatchObject({ country: 'NO', status: 'running' });
    expect(await ask('pool.req.snapshot', { tenantId: randomUUID() })).toEqual({ pools: [], nodes: [] });

    // Stopped on purpose: not a death, and no longer sampled.
    const mark = seen.length;
    expect((await order({ type: 'node.stop', nodeId })).status).toBe('fulfilled');
    await sleep(1000);
    const after = seen.slice(mark);
    expect(after.filter((m) => m.subject === 'node.evt.died' && m.data.nodeId === nodeId)).toEqual([]);
    const lastStats = after.filter((m) => m.subject === 'node.evt.stats' && m.data.nodeId === nodeId).at(-1);
    await sleep(700);
    expect(
      seen
        .slice(mark)
        .filter((m) => m.subject === 'node.evt.stats' && m.data.nodeId === nodeId)
        .at(-1),
    ).toBe(lastStats);
  });

  it('adds a node with a given id and server to the country pool, idempotently, and drains it before removal', async () => {
    const gateway = createBus(nc, 'api-gateway');
    const placed = await order({ type: 'node.add', country: 'de', server: 'de-fra-01.example.net' });
    expect(placed.status, placed.reason).toBe('fulfilled');
    expect(placed.result.nodeIds).toHaveLength(1);
    const nodeId = placed.result.nodeIds[0] as string;
    const done = await next((m) => m.subject === 'order.evt.fulfilled' && m.data.orderId === placed.id, 1000);
    expect(done.data.result.nodeIds).toEqual([nodeId]);
    const add = { orderId: placed.id as string, tenantId, nodeId, country: 'DE', server: 'de-fra-01.example.net' };
    const view = await viewOf(nodeId);
    expect(view).toMatchObject({ nodeId, status: 'running', country: 'DE', server: 'de-fra-01.example.net', kind: 'exit' });
    const env = (await docker.getContainer(view.containerId).inspect()).Config.Env;
    expect(env).toEqual(expect.arrayContaining(['SERVER_COUNTRIES=DE', 'SERVER_HOSTNAMES=de-fra-01.example.net', `NODE_ID=${nodeId}`]));

    // The same command delivered again (as after a crash, under a new order id) adds nothing.
    const again = { ...add, orderId: randomUUID() };
    await gateway.publish('node.cmd.add', again);
    await next((m) => m.subject === 'order.evt.fulfilled' && m.data.orderId === again.orderId, 30_000);
    expect(await containersOf(nodeId)).toHaveLength(1);

    // A second node in the same country goes into the same pool.
    const second = { orderId: randomUUID(), tenantId, nodeId: randomUUID(), country: 'DE' };
    await gateway.publish('node.cmd.add', second);
    const secondDone = await next((m) => m.subject === 'order.evt.fulfilled' && m.data.orderId === second.orderId, 30_000);
    expect(secondDone.data.result.poolId).toBe(done.data.result.poolId);
    const pools = (await ask('pool.req.snapshot', { tenantId })).pools.filter((p: any) => p.name === 'exit-de');
    expect(pools).toHaveLength(1);
    expect(pools[0].spec.nodes).toEqual({ min: 2, max: 2 });

    // Scale-down: the highest node drains first (no load balancer here, so nothing to wait for).
    const mark = seen.length;
    const down = await order({ type: 'pool.scale', poolId: done.data.result.poolId, nodes: { min: 1, max: 2 } });
    expect(down.status, down.reason).toBe('fulfilled');
    const events = seen
      .slice(mark)
      .filter((m) => m.data.nodeId === second.nodeId)
      .map((m) => m.subject);
    expect(events.filter((s) => s === 'node.evt.draining' || s === 'node.evt.removed')).toEqual(['node.evt.draining', 'node.evt.removed']);
    expect(await containersOf(second.nodeId)).toEqual([]);
    expect((await runningView(nodeId)).status).toBe('running');
  });
});
