import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { docker, poolOrder, startTestSystem, type TestSystem } from '@switchyard/testkit';

// Every order type the API takes, carried out on the real Docker engine.
describe('pool and node orders', () => {
  let sys: TestSystem;
  beforeAll(async () => {
    sys = await startTestSystem({ services: ['api-gateway', 'exit-node-manager'] });
  });
  afterAll(async () => sys?.close());

  const order = async (body: unknown) => {
    const placed = await sys.http('POST', '/v1/orders', { body });
    expect(placed.status, JSON.stringify(placed.body)).toBe(202);
    return sys.waitForOrder(placed.body.id, ['fulfilled', 'failed']);
  };
  const poolContainers = async (poolId: string) => docker.listContainers({ all: true, filters: { label: [`io.switchyard.pool=${poolId}`] } });

  it('creates, scales up and down, stops, starts, restarts and deletes', async () => {
    const created = await order(poolOrder('paris', 'FR', 1));
    expect(created.status).toBe('fulfilled');
    const poolId = created.result.poolId as string;
    expect(await poolContainers(poolId)).toHaveLength(1);

    const up = await order({ type: 'pool.scale', poolId, nodes: { min: 3, max: 3 } });
    expect(up.status).toBe('fulfilled');
    expect((await poolContainers(poolId)).filter((c) => c.State === 'running')).toHaveLength(3);

    const down = await order({ type: 'pool.scale', poolId, nodes: { min: 2, max: 3 } });
    expect(down.status).toBe('fulfilled');
    const left = await poolContainers(poolId);
    expect(left.map((c) => c.Labels['io.switchyard.node']).sort()).toEqual([...(down.result.nodeIds as string[])].sort());

    const nodeId = (down.result.nodeIds as string[])[0]!;
    const nodeContainer = () => docker.listContainers({ all: true, filters: { label: [`io.switchyard.node=${nodeId}`] } }).then((cs) => cs[0]);
    expect((await order({ type: 'node.stop', nodeId })).status).toBe('fulfilled');
    expect((await nodeContainer())?.State).toBe('exited');
    const listed = await sys.http('GET', `/v1/nodes?poolId=${poolId}`);
    expect(listed.body.nodes.find((n: { id: string }) => n.id === nodeId)).toMatchObject({ status: 'stopped', ports: [] });

    expect((await order({ type: 'node.start', nodeId })).status).toBe('fulfilled');
    expect((await nodeContainer())?.State).toBe('running');
    const before = (await docker.getContainer((await nodeContainer())!.Id).inspect()).State.StartedAt;
    expect((await order({ type: 'node.restart', nodeId })).status).toBe('fulfilled');
    const after = await docker.getContainer((await nodeContainer())!.Id).inspect();
    expect(after.State.Running).toBe(true);
    expect(after.State.StartedAt).not.toBe(before);

    expect((await order({ type: 'pool.delete', poolId })).status).toBe('fulfilled');
    expect(await poolContainers(poolId)).toEqual([]);
    expect((await sys.http('GET', `/v1/nodes?poolId=${poolId}`)).body.nodes).toEqual([]);
  });

  it('fails an order with a reason a person can act on', async () => {
    const missingImage = await order({ type: 'pool.create', pool: { name: 'ghost', kind: 'exit', country: 'SE', image: 'switchyard/not-built:none', nodes: { min: 1, max: 1 } } });
    expect(missingImage.status).toBe('failed');
    expect(missingImage.reason).toMatch(/switchyard\/not-built:none.*infra\/images\/build\.sh/);

    const unknownPool = await order({ type: 'pool.scale', poolId: randomUUID(), nodes: { min: 1, max: 1 } });
    expect(unknownPool).toMatchObject({ status: 'failed', reason: expect.stringMatching(/^unknown pool/) });

    const first = await order(poolOrder('twin', 'FI', 1));
    expect(first.status).toBe('fulfilled');
    const twin = await order(poolOrder('twin', 'FI', 1));
    expect(twin).toMatchObject({ status: 'failed', reason: expect.stringContaining('a pool named "twin" already exists') });

    const unknownNode = await order({ type: 'node.restart', nodeId: randomUUID() });
    expect(unknownNode).toMatchObject({ status: 'failed', reason: expect.stringMatching(/^unknown node/) });
  });
});
