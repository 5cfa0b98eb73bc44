import { randomUUID } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { MAX_POOL_NODES, payloadIssues } from '@switchyard/contracts';
import { createContainerEventHandler } from '../src/container-events.js';
import { createHealer } from '../src/healer.js';
import { core, createPool, delivery, exitPool, IMAGE, silent, TENANT } from './core-fakes.js';

// The manager's node orders, deaths and heals against fakes of its edges (core-fakes.ts).

type Core = ReturnType<typeof core>;

async function onePool(c: Core) {
  const poolId = await createPool(c.manager, exitPool('jp', 1));
  const [node] = await c.nodesOf(poolId);
  return { poolId, node: node!, containerId: node!.container_id! };
}

const nodeCommand = (nodeId: string, orderId: string, reason: string) => ({ orderId, tenantId: TENANT, nodeId, reason });

describe('sleep and wake', () => {
  it('puts a node to sleep on its ports, keeps it asleep through reconciliation, and wakes the same container on them', async () => {
    const c = core();
    const { node, containerId } = await onePool(c);

    const sleepOrder = randomUUID();
    await c.manager.commands['node.cmd.sleep'](nodeCommand(node.id, sleepOrder, 'sleep'), delivery('node.cmd.sleep'));
    // A sleeping node keeps its ports in view: the activator catches them while it sleeps.
    expect(await c.repo.findNode(TENANT, node.id)).toMatchObject({ status: 'sleeping', container_id: containerId, ports: node.ports });
    expect(c.docker.containers.get(containerId)?.running).toBe(false);
    expect(c.nats.on('node.evt.stopped')).toMatchObject([{ nodeId: node.id, containerId, reason: 'sleep' }]);
    expect(c.hot.at(-1)).toMatchObject({ nodeId: node.id, status: 'sleeping' });
    expect(c.nats.on('order.evt.fulfilled').at(-1)).toMatchObject({ orderId: sleepOrder });

    await c.manager.reconcileAll();
    expect((await c.repo.findNode(TENANT, node.id))?.status).toBe('sleeping');
    expect(c.docker.containers.get(containerId)?.running).toBe(false);

    const wakeOrder = randomUUID();
    await c.manager.commands['node.cmd.wake'](nodeCommand(node.id, wakeOrder, 'connection'), delivery('node.cmd.wake'));
    expect(await c.repo.findNode(TENANT, node.id)).toMatchObject({ status: 'running', container_id: containerId, ports: node.ports });
    expect(c.docker.containers.size).toBe(1);
    expect(c.docker.containers.get(containerId)?.running).toBe(true);
    expect(c.nats.on('node.evt.started').at(-1)).toMatchObject({ nodeId: node.id, containerId, ports: node.ports });
    expect(c.nats.on('order.evt.fulfilled').at(-1)).toEqual({ orderId: wakeOrder, tenantId: TENANT, result: { poolId: node.pool_id, nodeIds: [node.id] } });
  });

  it('fails a wake whose image is gone, naming the image, and leaves the node asleep', async () => {
    const c = core();
    const { node, containerId } = await onePool(c);
    await c.manager.commands['node.cmd.sleep'](nodeCommand(node.id, randomUUID(), 'sleep'), delivery('node.cmd.sleep'));
    c.docker.missingImages.add(IMAGE);

    const wakeOrder = randomUUID();
    await c.manager.commands['node.cmd.wake'](nodeCommand(node.id, wakeOrder, 'connection'), delivery('node.cmd.wake'));
    const [failed] = c.nats.on('order.evt.failed');
    expect(failed).toMatchObject({ orderId: wakeOrder });
    expect(failed?.['reason']).toMatch(new RegExp(`^cannot wake node jp-1: the image ${IMAGE} is not on this Docker host`));
    expect((await c.repo.findNode(TENANT, node.id))?.status).toBe('sleeping');
    expect(c.docker.containers.get(containerId)?.running).toBe(false);
  });
});

describe('a node that dies on its own', () => {
  it('is restarted in place, and replaced by a new container when it dies again', async () => {
    const c = core();
    const { node, containerId: first } = await onePool(c);
    const healer = createHealer(c.manager, { baseDelayMs: 5, maxDelayMs: 20, maxRestarts: 1, windowMs: 60_000, giveUpAfter: 5 }, silent);
    const sampled: string[] = [];
    const onEvent = createContainerEventHandler({
      manager: c.manager,
      healer,
      sampler: { track: () => undefined, untrack: (id) => void sampled.push(`untrack:${id}`) },
      publish: c.nats.bus.publish,
      isExpected: () => false,
      log: silent,
    });
    const die = (containerId: string) => {
      c.docker.crash(containerId, 137);
      const labels = c.docker.containers.get(containerId)?.options.Labels ?? {};
      onEvent({ action: 'die', containerId, labels, exitCode: 137, timeNano: String(process.hrtime.bigint()) });
    };
    const current = () => c.repo.findNode(TENANT, node.id);

    die(first);
    await vi.waitFor(() => expect(c.nats.on('node.evt.started')).toHaveLength(2), { timeout: 2000, interval: 10 });
    expect(await current()).toMatchObject({ status: 'running', container_id: first });
    expect(c.nats.on('node.evt.died')).toMatchObject([{ nodeId: node.id, containerId: first, exitCode: 137, oomKilled: false }]);
    expect(c.nats.on('node.evt.started').map((e) => e['containerId'])).toEqual([first, first]);
    expect(c.hot.map((h) => h.status)).toEqual(['running', 'error', 'running']);
    expect(sampled).toEqual([`untrack:${first}`]);

    die(first);
    await vi.waitFor(() => expect(c.nats.on('node.evt.started')).toHaveLength(3), { timeout: 2000, interval: 10 });
    const replacement = (await current())!.container_id!;
    expect(replacement).not.toBe(first);
    expect((await current())?.status).toBe('running');
    expect(c.docker.containers.has(first)).toBe(false);
    expect(c.docker.containers.get(replacement)?.running).toBe(true);
    expect(c.nats.on('node.evt.created').map((e) => e['containerId'])).toEqual([first, replacement]);
    // The node keeps its host ports across the replacement.
    expect((await current())?.ports).toEqual(node.ports);
    await healer.stop();
  });

  it('is not a death when the manager stopped the container itself', async () => {
    const c = core();
    const { node, containerId } = await onePool(c);
    const healed: string[] = [];
    const onEvent = createContainerEventHandler({
      manager: c.manager,
      healer: { nodeDied: (_t, nodeId) => void healed.push(nodeId) },
      sampler: { track: () => undefined, untrack: () => undefined },
      publish: c.nats.bus.publish,
      isExpected: (id) => id === containerId,
      log: silent,
    });
    await c.manager.commands['node.cmd.stop'](nodeCommand(node.id, randomUUID(), 'stop'), delivery('node.cmd.stop'));
    onEvent({ action: 'die', containerId, labels: c.docker.containers.get(containerId)?.options.Labels ?? {}, exitCode: 0, timeNano: '1' });
    // The positive side: the stop itself was told.
    expect(c.nats.on('node.evt.stopped')).toMatchObject([{ nodeId: node.id, reason: 'stop' }]);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(c.nats.on('node.evt.died')).toEqual([]);
    expect(healed).toEqual([]);
    expect((await c.repo.findNode(TENANT, node.id))?.status).toBe('stopped');
  });

  it('is noticed by the next reconciliation when nobody watched, and the node runs again', async () => {
    const c = core();
    const { node, containerId } = await onePool(c);
    c.docker.crash(containerId, 1);

    const running = await c.manager.reconcileAll();
    expect(c.nats.on('node.evt.died')).toMatchObject([{ nodeId: node.id, containerId, exitCode: 1 }]);
    expect(await c.repo.findNode(TENANT, node.id)).toMatchObject({ status: 'running', container_id: containerId });
    expect(running).toEqual([{ containerId, node: { tenantId: TENANT, poolId: node.pool_id, nodeId: node.id } }]);
  });
});

describe('node.cmd.add', () => {
  it("starts the node in the tenant's exit pool of the country, made when there is none", async () => {
    const c = core();
    const nodeId = randomUUID();
    const orderId = randomUUID();
    await c.manager.commands['node.cmd.add']({ orderId, tenantId: TENANT, nodeId, country: 'jp', server: 'jp-tokyo-1' }, delivery('node.cmd.add'));
    const node = await c.repo.findNode(TENANT, nodeId);
    expect(node).toMatchObject({ name: 'exit-jp-1', status: 'running', server: 'jp-tokyo-1' });
    const pool = await c.repo.findLivePoolByName(TENANT, 'exit-jp');
    expect(pool?.spec).toMatchObject({ kind: 'exit', country: 'JP', nodes: { min: 1, max: 1 } });
    expect(c.docker.containers.get(node!.container_id!)?.options.Env).toContain('SERVER_HOSTNAMES=jp-tokyo-1');
    expect(c.nats.on('order.evt.fulfilled')).toEqual([{ orderId, tenantId: TENANT, result: { poolId: pool!.id, nodeIds: [nodeId] } }]);
  });

  it('refuses a node beyond the pool maximum of 100, and the pool stays valid', async () => {
    const c = core();
    const poolId = await createPool(c.manager, exitPool('exit-jp', MAX_POOL_NODES));
    const orderId = randomUUID();
    const nodeId = randomUUID();
    await c.manager.commands['node.cmd.add']({ orderId, tenantId: TENANT, nodeId, country: 'jp' }, delivery('node.cmd.add'));
    expect(c.nats.on('order.evt.failed')).toEqual([{ orderId, tenantId: TENANT, reason: `pool exit-jp has ${MAX_POOL_NODES} nodes, the most a pool may have` }]);
    expect(await c.repo.findNode(TENANT, nodeId)).toBeUndefined();
    const pool = await c.repo.findLivePoolByName(TENANT, 'exit-jp');
    expect(pool?.id).toBe(poolId);
    expect(payloadIssues('pool.evt.changed', { tenantId: TENANT, poolId, name: pool!.name, spec: pool!.spec, at: new Date().toISOString() })).toEqual([]);
  });
});
