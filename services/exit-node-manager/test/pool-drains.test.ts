import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { eventually } from '@switchyard/testkit/async';
import { core, createPool, delivery, engineAnswer, engineUnreachable, exitPool, TENANT } from './core-fakes.js';

// Drains run in the background: the command that asks for one returns once it is recorded.

const OTHER_TENANT = '00000000-0000-4000-8000-000000000002';

describe('a drain in the background', () => {
  it('holds no command: four pools draining for an hour, and a fifth pool is still created and its order fulfilled', async () => {
    // Every node keeps a connection open: each drain would wait its whole hour.
    const c = core({ activeConnections: () => 1, awaitDrains: false, drainHeartbeatMs: 30 });
    const pools: string[] = [];
    for (let i = 1; i <= 4; i++) pools.push(await createPool(c.manager, exitPool(`slow${i}`, 2, { drainSec: 3600 })));
    const drainOrders: string[] = pools.map(() => randomUUID());
    await c.manager.commands['pool.cmd.scale']({ orderId: drainOrders[0]!, tenantId: TENANT, poolId: pools[0]!, nodes: { min: 1, max: 1 } }, delivery('pool.cmd.scale'));
    for (let i = 1; i < 4; i++) {
      await c.manager.commands['pool.cmd.delete']({ orderId: drainOrders[i]!, tenantId: TENANT, poolId: pools[i]! }, delivery('pool.cmd.delete'));
    }
    // Each command came back with its drain recorded and under way, its order still open.
    expect([...c.drainStore.records.values()].map((r) => [r.orderId, r.kind])).toEqual([
      [drainOrders[0], 'scale'],
      [drainOrders[1], 'delete'],
      [drainOrders[2], 'delete'],
      [drainOrders[3], 'delete'],
    ]);
    expect(c.nats.on('node.evt.draining')).toHaveLength(1 + 3 * 2);
    const fulfilled = () => c.nats.on('order.evt.fulfilled').map((e) => e['orderId']);
    expect(fulfilled().filter((id) => drainOrders.includes(id as string))).toEqual([]);

    const fifthOrder = randomUUID();
    const fifthPool = randomUUID();
    await c.manager.commands['pool.cmd.create']({ orderId: fifthOrder, tenantId: OTHER_TENANT, poolId: fifthPool, spec: exitPool('fifth', 1) }, delivery('pool.cmd.create'));
    expect(fulfilled()).toContain(fifthOrder);
    expect((await c.repo.poolNodes(OTHER_TENANT, fifthPool)).map((n) => n.status)).toEqual(['running']);

    // The draining orders say they are still at it, one step at a time (which keeps them from
    // being swept as stale by the gateway).
    await eventually(
      () => c.nats.published.filter((m) => m.subject === 'order.evt.progress' && m.msgId?.startsWith(`order.evt.progress:${drainOrders[0]}:drain:`)),
      (beats) => beats.length >= 2,
      5000,
      'drain heartbeats',
      { intervalMs: 10 },
    );
    expect(fulfilled().filter((id) => drainOrders.includes(id as string))).toEqual([]);

    // Shutdown stops the waiting; the drains stay recorded for the next start.
    await c.manager.drains.stop();
    expect(c.drainStore.records.size).toBe(4);
  });

  it('after a restart, finishes a recorded delete and fulfils its order; the pool takes no orders meanwhile', async () => {
    const c = core({ awaitDrains: false });
    const poolId = await createPool(c.manager, exitPool('jp', 2));
    const orderId = randomUUID();
    // What a manager that crashed mid-drain left behind: the pool and its nodes, and the record.
    await c.drainStore.add({ tenantId: TENANT, id: orderId, poolId, kind: 'delete', orderId, reason: 'pool deleted', deadline: new Date(), keepVolumes: false });

    const scaleOrder = randomUUID();
    await c.manager.commands['pool.cmd.scale']({ orderId: scaleOrder, tenantId: TENANT, poolId, nodes: { min: 3, max: 3 } }, delivery('pool.cmd.scale'));
    expect(c.nats.on('order.evt.failed')).toEqual([{ orderId: scaleOrder, tenantId: TENANT, reason: 'pool jp is being deleted' }]);

    await c.manager.reconcileAll();
    await c.manager.drains.idle();
    expect(c.docker.containers.size).toBe(0);
    expect(c.repo.pools.get(`${TENANT}/${poolId}`)?.status).toBe('deleted');
    expect(c.nats.on('pool.evt.deleted')).toMatchObject([{ poolId }]);
    expect(c.nats.on('order.evt.fulfilled').at(-1)).toEqual({ orderId, tenantId: TENANT, result: { poolId } });
    expect(c.drainStore.records.size).toBe(0);
  });

  it('a redelivered scale-down records its drain once, and the order is fulfilled once the nodes are gone', async () => {
    let open = true;
    const c = core({ activeConnections: () => (open ? 1 : 0), awaitDrains: false });
    const poolId = await createPool(c.manager, exitPool('jp', 3));
    const command = { orderId: randomUUID(), tenantId: TENANT, poolId, nodes: { min: 1, max: 1 } };
    await c.manager.commands['pool.cmd.scale'](command, delivery('pool.cmd.scale'));
    await c.manager.commands['pool.cmd.scale'](command, delivery('pool.cmd.scale'));
    expect(c.drainStore.records.size).toBe(1);
    expect((await c.nodesOf(poolId)).map((n) => n.ordinal)).toEqual([1, 2, 3]);

    open = false;
    await c.manager.drains.idle();
    const [first] = await c.nodesOf(poolId);
    expect((await c.nodesOf(poolId)).map((n) => n.ordinal)).toEqual([1]);
    expect(c.nats.on('order.evt.fulfilled').at(-1)).toEqual({ orderId: command.orderId, tenantId: TENANT, result: { poolId, nodeIds: [first!.id] } });
    expect(c.drainStore.records.size).toBe(0);
  });
});

describe('a pool scaled back up while it drains', () => {
  it('replaces the drained nodes it wants again with new ones, and fulfils both orders', async () => {
    let open = true;
    const c = core({ activeConnections: () => (open ? 1 : 0), awaitDrains: false });
    const poolId = await createPool(c.manager, exitPool('jp', 2));
    const [first, second] = await c.nodesOf(poolId);
    const down = randomUUID();
    await c.manager.commands['pool.cmd.scale']({ orderId: down, tenantId: TENANT, poolId, nodes: { min: 1, max: 2 } }, delivery('pool.cmd.scale'));
    const up = randomUUID();
    await c.manager.commands['pool.cmd.scale']({ orderId: up, tenantId: TENANT, poolId, nodes: { min: 2, max: 2 } }, delivery('pool.cmd.scale'));
    expect(c.nats.on('node.evt.draining').map((e) => e['nodeId'])).toEqual([second!.id]);

    open = false;
    await c.manager.drains.idle();
    const now = await c.nodesOf(poolId);
    expect(now.map((n) => [n.ordinal, n.status])).toEqual([
      [1, 'running'],
      [2, 'running'],
    ]);
    // The draining node is gone; ordinal 2 is a new node the load balancer routes to.
    expect(now[0]!.id).toBe(first!.id);
    expect(now[1]!.id).not.toBe(second!.id);
    expect(c.nats.on('node.evt.removed').map((e) => e['nodeId'])).toEqual([second!.id]);
    const fulfilled = c.nats.on('order.evt.fulfilled');
    expect(fulfilled.map((e) => e['orderId'])).toEqual(expect.arrayContaining([down, up]));
    expect(fulfilled.find((e) => e['orderId'] === down)).toEqual({ orderId: down, tenantId: TENANT, result: { poolId, nodeIds: [first!.id, now[1]!.id] } });
  });
});

describe('a delete the Docker engine fails', () => {
  const withVolume = (name: string, nodes: number) => exitPool(name, nodes, { volumes: [{ name: 'data', mountPath: '/data' }] });
  const del = (c: ReturnType<typeof core>, poolId: string, orderId: string) =>
    c.manager.commands['pool.cmd.delete']({ orderId, tenantId: TENANT, poolId }, delivery('pool.cmd.delete'));

  it('release throws: the pool is still deleted, pool.evt.deleted published and the order fulfilled', async () => {
    const c = core();
    const poolId = await createPool(c.manager, exitPool('jp', 2));
    c.docker.faults.removeNetwork = () => engineAnswer('network.remove', 409, 'error while removing network: network has active endpoints');
    const orderId = randomUUID();
    await del(c, poolId, orderId);

    expect(c.repo.pools.get(`${TENANT}/${poolId}`)?.status).toBe('deleted');
    expect(c.nats.on('pool.evt.deleted')).toMatchObject([{ tenantId: TENANT, poolId }]);
    expect(c.nats.on('order.evt.failed')).toEqual([]);
    expect(c.nats.on('order.evt.fulfilled').at(-1)).toEqual({ orderId, tenantId: TENANT, result: { poolId } });
    expect(c.timeline.slice(-3)).toEqual(['docker.removeNetwork:failed', 'pool.evt.deleted', 'order.evt.fulfilled']);
    expect(c.drainStore.records.size).toBe(0);
  });

  it('removeVolume throws (the engine refuses): the order fails, and no reconciliation brings the nodes back', async () => {
    const c = core();
    const poolId = await createPool(c.manager, withVolume('jp', 2));
    c.docker.faults.removeVolume = () => engineAnswer('volume.remove', 409, 'remove sy-x-1-data: volume is in use');
    const orderId = randomUUID();
    await del(c, poolId, orderId);

    expect(c.nats.on('order.evt.failed')).toMatchObject([{ orderId, tenantId: TENANT, reason: expect.stringContaining('volume is in use') }]);
    expect(c.nats.on('pool.evt.deleted')).toEqual([]);
    expect(c.docker.containers.size).toBe(0);
    expect(c.drainStore.records.size).toBe(0);
    expect(c.repo.pools.get(`${TENANT}/${poolId}`)?.desired_nodes).toBe(0);

    await c.manager.reconcileAll();
    await c.manager.drains.idle();
    expect(c.docker.containers.size).toBe(0);
    expect(await c.nodesOf(poolId)).toEqual([]);
    expect(c.timeline.filter((t) => t.startsWith('docker.create:'))).toHaveLength(2);

    // Asked again once the engine lets the volumes go, the delete completes.
    delete c.docker.faults.removeVolume;
    const again = randomUUID();
    await del(c, poolId, again);
    expect(c.repo.pools.get(`${TENANT}/${poolId}`)?.status).toBe('deleted');
    expect(c.docker.volumes.size).toBe(0);
    expect(c.nats.on('order.evt.fulfilled').at(-1)).toEqual({ orderId: again, tenantId: TENANT, result: { poolId } });
  });

  it('Docker unreachable mid-delete then back: the delete completes and the order is fulfilled', async () => {
    const c = core({ awaitDrains: false });
    const poolId = await createPool(c.manager, withVolume('jp', 2));
    const [first] = await c.nodesOf(poolId);
    // The engine goes away once the first node's container is removed.
    let away = false;
    c.docker.faults.remove = () => {
      if (away) return engineUnreachable('container.remove');
      away = true;
      return undefined;
    };
    c.docker.faults.findContainers = () => (away ? engineUnreachable('container.list') : undefined);
    const orderId = randomUUID();
    await del(c, poolId, orderId);

    await eventually(
      () => c.timeline.filter((t) => t.endsWith(':failed')),
      (f) => f.length > 0,
      5000,
      'the engine refusing a call',
      { intervalMs: 10 },
    );
    // Still recorded and being retried: the pool takes no orders and reconciliation leaves it alone.
    expect(c.drainStore.records.size).toBe(1);
    expect(c.nats.on('order.evt.failed')).toEqual([]);
    await c.manager.reconcileAll();
    expect(c.repo.pools.get(`${TENANT}/${poolId}`)).toMatchObject({ status: 'active', desired_nodes: 0 });
    expect((await c.nodesOf(poolId)).map((n) => n.id)).not.toContain(first!.id);

    delete c.docker.faults.remove;
    delete c.docker.faults.findContainers;
    await c.manager.drains.idle();
    expect(c.docker.containers.size).toBe(0);
    expect(c.docker.volumes.size).toBe(0);
    expect(c.repo.pools.get(`${TENANT}/${poolId}`)?.status).toBe('deleted');
    expect(c.nats.on('pool.evt.deleted')).toMatchObject([{ poolId }]);
    expect(c.nats.on('order.evt.failed')).toEqual([]);
    expect(c.nats.on('order.evt.fulfilled').at(-1)).toEqual({ orderId, tenantId: TENANT, result: { poolId } });
    expect(c.drainStore.records.size).toBe(0);
  });

  it('an engine failing on its side (5xx) is retried too, not reported as the order failing', async () => {
    const c = core();
    const poolId = await createPool(c.manager, withVolume('jp', 1));
    let failures = 1;
    c.docker.faults.removeVolume = () => (failures-- > 0 ? engineAnswer('volume.remove', 500, 'Internal Server Error') : undefined);
    const orderId = randomUUID();
    await del(c, poolId, orderId);

    expect(c.timeline).toContain('docker.removeVolume:failed');
    expect(c.nats.on('order.evt.failed')).toEqual([]);
    expect(c.repo.pools.get(`${TENANT}/${poolId}`)?.status).toBe('deleted');
    expect(c.nats.on('order.evt.fulfilled').at(-1)).toEqual({ orderId, tenantId: TENANT, result: { poolId } });
  });
});
