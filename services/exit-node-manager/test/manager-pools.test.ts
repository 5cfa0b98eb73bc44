import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Rejection } from '@switchyard/bus';
import { Labels } from '@switchyard/docker';
import { core, createPool, delivery, exitPool, IMAGE, TENANT } from './core-fakes.js';

// The manager's pool orders against fakes of Docker, the tables, NATS and Redis (core-fakes.ts).

type Core = ReturnType<typeof core>;

async function scale(c: Core, poolId: string, size: number, orderId: string = randomUUID()) {
  await c.manager.commands['pool.cmd.scale']({ orderId, tenantId: TENANT, poolId, nodes: { min: size, max: Math.max(size, 1) } }, delivery('pool.cmd.scale'));
}

describe('pool.cmd.create', () => {
  it('runs one container per node on host ports of its own, and fulfils the order with the node ids', async () => {
    const c = core();
    const orderId = randomUUID();
    const poolId = await createPool(c.manager, exitPool('jp', 2), orderId);

    const nodes = await c.nodesOf(poolId);
    expect(nodes.map((n) => [n.name, n.status])).toEqual([
      ['jp-1', 'running'],
      ['jp-2', 'running'],
    ]);
    for (const n of nodes) {
      const container = c.docker.containers.get(n.container_id ?? '');
      expect(container?.running).toBe(true);
      expect(container?.options.Labels?.[Labels.node]).toBe(n.id);
      expect(n.ports.map((p) => [p.name, p.hostIp])).toEqual([
        ['proxy', '127.0.0.1'],
        ['control', '127.0.0.1'],
      ]);
    }
    expect(new Set(nodes.flatMap((n) => n.ports.map((p) => p.hostPort))).size).toBe(4);
    const ids = nodes.map((n) => n.id);
    expect(c.nats.on('node.evt.created').map((e) => e['nodeId'])).toEqual(ids);
    expect(c.nats.on('node.evt.started').map((e) => e['nodeId'])).toEqual(ids);
    expect(c.nats.on('pool.evt.changed')).toMatchObject([{ tenantId: TENANT, poolId, name: 'jp' }]);
    expect(c.nats.on('order.evt.progress')).toMatchObject([{ orderId, message: 'creating pool jp with 2 node(s)' }]);
    expect(c.nats.on('order.evt.fulfilled')).toEqual([{ orderId, tenantId: TENANT, result: { poolId, nodeIds: ids } }]);
    expect(c.hot.map((h) => [h.nodeId, h.status])).toEqual(ids.map((id) => [id, 'running']));
  });

  it('carried out again (a redelivery), finds the containers it made and makes no more', async () => {
    const c = core();
    const command = { orderId: randomUUID(), tenantId: TENANT, poolId: randomUUID(), spec: exitPool('jp', 2) };
    await c.manager.commands['pool.cmd.create'](command, delivery('pool.cmd.create'));
    await c.manager.commands['pool.cmd.create'](command, delivery('pool.cmd.create'));
    expect(c.docker.containers.size).toBe(2);
    expect(c.nats.on('node.evt.created')).toHaveLength(2);
    expect(c.nats.on('node.evt.started')).toHaveLength(2);
    // The same fulfilment twice, under one msgId: JetStream keeps one.
    expect(new Set(c.nats.published.filter((m) => m.subject === 'order.evt.fulfilled').map((m) => m.msgId)).size).toBe(1);
  });
});

describe('pool.cmd.scale', () => {
  it('scales up, and before scaling down tells the nodes to drain and waits until the load balancer sees no connection on them', async () => {
    let busy = '';
    let asked = 0;
    const c = core({ activeConnections: (nodeId) => (nodeId === busy && ++asked <= 3 ? 1 : 0) });
    const poolId = await createPool(c.manager, exitPool('jp', 1));
    await scale(c, poolId, 3);
    const [first, second, third] = await c.nodesOf(poolId);
    expect([first?.status, second?.status, third?.status]).toEqual(['running', 'running', 'running']);
    busy = third!.id;

    const orderId = randomUUID();
    await scale(c, poolId, 1, orderId);

    const t = c.timeline;
    const at = (entry: string) => t.indexOf(entry);
    for (const node of [second!, third!]) {
      expect(at(`node.evt.draining:${node.id}`)).toBeGreaterThan(-1);
      expect(at(`node.evt.draining:${node.id}`)).toBeLessThan(at(`docker.stop:${node.container_id}`));
      expect(at(`docker.stop:${node.container_id}`)).toBeLessThan(at(`docker.remove:${node.container_id}`));
    }
    // The busy node stays until the load balancer's answer drops to none.
    expect(asked).toBeGreaterThan(3);
    expect(t.lastIndexOf(`traffic:${third!.id}=1`)).toBeLessThan(at(`traffic:${third!.id}=0`));
    expect(at(`traffic:${third!.id}=0`)).toBeLessThan(at(`docker.stop:${third!.container_id}`));

    expect(c.nats.on('node.evt.removed').map((e) => [e['nodeId'], e['reason']])).toEqual([
      [second!.id, 'scaled down'],
      [third!.id, 'scaled down'],
    ]);
    expect((await c.nodesOf(poolId)).map((n) => n.id)).toEqual([first!.id]);
    expect([...c.docker.containers.keys()]).toEqual([first!.container_id]);
    expect(c.forgotten).toEqual([second!.id, third!.id]);
    expect(c.hot.filter((h) => h.status === 'removed').map((h) => h.nodeId)).toEqual([second!.id, third!.id]);
    expect(c.nats.on('order.evt.fulfilled').at(-1)).toEqual({ orderId, tenantId: TENANT, result: { poolId, nodeIds: [first!.id] } });
  });

  it("stops waiting for connections to end after the pool's drainSec", async () => {
    const c = core({ activeConnections: () => 2 });
    const poolId = await createPool(c.manager, exitPool('jp', 2, { drainSec: 1 }));
    const t0 = performance.now();
    await scale(c, poolId, 1);
    const tookMs = performance.now() - t0;
    expect(tookMs).toBeGreaterThanOrEqual(950);
    expect(tookMs).toBeLessThan(5000);
    expect(c.nats.on('node.evt.removed')).toHaveLength(1);
  });

  it('does not wait when no load balancer answers: nothing routes to the node', async () => {
    const c = core({ activeConnections: () => undefined });
    const poolId = await createPool(c.manager, exitPool('jp', 2));
    const t0 = performance.now();
    await scale(c, poolId, 1);
    // drainSec is 30 s by default.
    expect(performance.now() - t0).toBeLessThan(3000);
    expect(c.nats.on('node.evt.draining')).toHaveLength(1);
    expect(c.nats.on('node.evt.removed')).toHaveLength(1);
  });
});

describe('pool.cmd.delete', () => {
  it('drains and removes every node, then announces the pool gone', async () => {
    const c = core();
    const poolId = await createPool(c.manager, exitPool('jp', 2));
    const orderId = randomUUID();
    await c.manager.commands['pool.cmd.delete']({ orderId, tenantId: TENANT, poolId }, delivery('pool.cmd.delete'));
    expect(c.nats.on('node.evt.draining')).toHaveLength(2);
    expect(c.nats.on('node.evt.removed')).toHaveLength(2);
    expect(c.docker.containers.size).toBe(0);
    expect(c.repo.pools.get(`${TENANT}/${poolId}`)?.status).toBe('deleted');
    expect(c.timeline.at(-2)).toBe('pool.evt.deleted');
    expect(c.nats.on('order.evt.fulfilled').at(-1)).toEqual({ orderId, tenantId: TENANT, result: { poolId } });
  });
});

describe("a tenant's network and volumes", () => {
  const withVolume = (name: string) => exitPool(name, 1, { volumes: [{ name: 'data', mountPath: '/data' }] });
  const network = `sy-net-${TENANT}`;
  const del = (c: Core, poolId: string, keepVolumes?: boolean) =>
    c.manager.commands['pool.cmd.delete']({ orderId: randomUUID(), tenantId: TENANT, poolId, ...(keepVolumes === undefined ? {} : { keepVolumes }) }, delivery('pool.cmd.delete'));

  it('makes the network before the first container and removes it with the last pool', async () => {
    const c = core();
    const first = await createPool(c.manager, exitPool('jp', 1));
    const second = await createPool(c.manager, exitPool('us', 1, { country: 'US' }));
    expect(c.timeline.filter((e) => e.startsWith('docker.network.create'))).toEqual([`docker.network.create:${network}`]);
    expect(c.timeline.indexOf(`docker.network.create:${network}`)).toBeLessThan(c.timeline.findIndex((e) => e.startsWith('docker.create')));
    await del(c, first);
    expect(c.docker.networks.has(network)).toBe(true);
    await del(c, second);
    expect(c.docker.networks.has(network)).toBe(false);
  });

  it('keeps the network of a tenant whose pool is scaled to zero, and a host-network pool never makes one', async () => {
    const c = core();
    const poolId = await createPool(c.manager, exitPool('jp', 1));
    await c.manager.commands['pool.cmd.scale']({ orderId: randomUUID(), tenantId: TENANT, poolId, nodes: { min: 0, max: 1 } }, delivery('pool.cmd.scale'));
    expect(c.docker.networks.has(network)).toBe(true);
    const other = core();
    await createPool(other.manager, exitPool('jp', 1, { network: 'host' }));
    expect(other.docker.networks.size).toBe(0);
  });

  it("removes the nodes' volumes with the pool, and keeps them when the order says keepVolumes", async () => {
    const c = core();
    const gone = await createPool(c.manager, withVolume('a'));
    const kept = await createPool(c.manager, withVolume('b'));
    expect(c.docker.volumes.size).toBe(2);
    await del(c, gone);
    expect([...c.docker.volumes.keys()]).toEqual([`sy-${kept}-1-data`]);
    await del(c, kept, true);
    expect([...c.docker.volumes.keys()]).toEqual([`sy-${kept}-1-data`]);
  });

  it('keeps a container made before tenant networks, and warns that it shares the default bridge', async () => {
    const warnings: string[] = [];
    const c = core({ warn: (_obj, msg) => void warnings.push(msg) });
    const poolId = await createPool(c.manager, exitPool('jp', 1));
    const [container] = [...c.docker.containers.values()];
    container!.options.HostConfig = { ...container!.options.HostConfig, NetworkMode: 'default' };
    const nodeId = (await c.nodesOf(poolId))[0]!.id;
    await c.manager.commands['node.cmd.start']({ orderId: randomUUID(), tenantId: TENANT, nodeId }, delivery('node.cmd.start'));
    expect([...c.docker.containers.keys()]).toEqual([container!.id]);
    expect(warnings).toEqual([expect.stringMatching(/predates tenant networks and limits \(it is on "default"\)/)]);
  });

  it('mounts the volume a node had under its old name again when its container is made anew', async () => {
    const c = core();
    const poolId = await createPool(c.manager, withVolume('jp'));
    const [container] = [...c.docker.containers.values()];
    const old = `sy-${TENANT.slice(0, 8)}-jp-1-data`;
    // As a manager before this version made it: the old name, the pool's labels.
    c.docker.volumes.clear();
    c.docker.volumes.set(old, { ...(container!.options.Labels ?? {}) });
    c.docker.containers.clear();
    await c.manager.commands['node.cmd.start']({ orderId: randomUUID(), tenantId: TENANT, nodeId: (await c.nodesOf(poolId))[0]!.id }, delivery('node.cmd.start'));
    expect([...c.docker.containers.values()].map((x) => x.options.HostConfig?.Mounts?.[0]?.Source)).toEqual([old]);
  });
});

describe('an order that cannot be carried out', () => {
  it('ends as order.evt.failed with the reason, and the command is acked', async () => {
    const c = core();
    const orderId = randomUUID();
    const poolId = randomUUID();
    await expect(scale(c, poolId, 2, orderId)).resolves.toBeUndefined();
    expect(c.nats.on('order.evt.failed')).toEqual([{ orderId, tenantId: TENANT, reason: `unknown pool ${poolId}` }]);
    expect(c.nats.on('order.evt.fulfilled')).toEqual([]);
  });

  it('without an order, is rejected with the reason so the bus dead-letters it', async () => {
    const c = core();
    const nodeId = randomUUID();
    // An idle sleep from the sleep-controller carries no order.
    const sleep = c.manager.commands['node.cmd.sleep']({ tenantId: TENANT, nodeId, reason: 'sleep' }, delivery('node.cmd.sleep'));
    await expect(sleep).rejects.toThrow(Rejection);
    await expect(sleep).rejects.toThrow(`unknown node ${nodeId}`);
    expect(c.nats.on('order.evt.failed')).toEqual([]);
  });

  it("fails with Docker's reason when the engine refuses, marks the node in error, and still announces the pool", async () => {
    const c = core();
    c.docker.missingImages.add(IMAGE);
    const orderId = randomUUID();
    const poolId = await createPool(c.manager, exitPool('jp', 1), orderId);
    const [failed] = c.nats.on('order.evt.failed');
    expect(failed).toMatchObject({ orderId, tenantId: TENANT });
    expect(failed?.['reason']).toMatch(new RegExp(`^node jp-1: the image ${IMAGE} is not on this Docker host`));
    expect((await c.nodesOf(poolId)).map((n) => n.status)).toEqual(['error']);
    expect(c.hot.map((h) => h.status)).toEqual(['error']);
    expect(c.nats.on('pool.evt.changed')).toMatchObject([{ poolId }]);
    expect(c.docker.containers.size).toBe(0);
  });

  it('is not what an outage of its own edges is: a database error goes back to the bus for redelivery', async () => {
    const c = core();
    const poolId = await createPool(c.manager, exitPool('jp', 1));
    const down = new Error('Connection terminated unexpectedly');
    c.repo.findPool = async () => {
      throw down;
    };
    const orderId = randomUUID();
    await expect(scale(c, poolId, 2, orderId)).rejects.toBe(down);
    expect(c.nats.on('order.evt.failed')).toEqual([]);
  });
});
