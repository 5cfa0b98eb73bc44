import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { docker, startTestSystem, type TestSystem } from '@switchyard/testkit';

// A delete the Docker engine refuses halfway, against the real engine: a container of the
// test's own holds one of the pool's volumes, so the volume cannot be removed.

describe('a pool delete the engine refuses', () => {
  let sys: TestSystem;
  beforeAll(async () => {
    sys = await startTestSystem({ services: ['api-gateway', 'exit-node-manager'] });
  });
  afterAll(async () => {
    await sys?.close();
  });

  it('fails its order, and a restarted manager does not bring the nodes back; asked again, it completes', async () => {
    const tenant = await sys.http('POST', '/v1/tenants', { body: { name: 'acme' } });
    expect(tenant.status, JSON.stringify(tenant.body)).toBe(201);
    const key = tenant.body.apiKey as string;
    const order = async (body: object, statuses: string[]) => {
      const placed = await sys.http('POST', '/v1/orders', { key, body });
      expect(placed.status, JSON.stringify(placed.body)).toBe(202);
      return sys.waitForOrder(placed.body.id, statuses, { key, timeoutMs: 60_000 });
    };
    const created = await order(
      { type: 'pool.create', pool: { name: 'jp', kind: 'exit', country: 'JP', nodes: { min: 1, max: 1 }, drainSec: 0, volumes: [{ name: 'data', mountPath: '/data' }] } },
      ['fulfilled', 'failed'],
    );
    expect(created.status, JSON.stringify(created)).toBe('fulfilled');
    const poolId = created.result.poolId as string;
    const poolLabel = { label: [`io.switchyard.pool=${poolId}`] };
    const nodeContainers = async () => docker.listContainers({ all: true, filters: { label: [`io.switchyard.pool=${poolId}`, 'io.switchyard.managed=true'] } });
    const { Volumes: volumes } = await docker.listVolumes({ filters: poolLabel });
    expect(volumes?.map((v) => v.Name)).toEqual([`sy-${poolId}-1-data`]);

    const blocker = await docker.createContainer({
      Image: (await nodeContainers())[0]!.Image,
      Labels: { 'io.switchyard.test': 'pool-delete' },
      HostConfig: { Mounts: [{ Type: 'volume', Source: `sy-${poolId}-1-data`, Target: '/held' }] },
    });
    try {
      const refused = await order({ type: 'pool.delete', poolId }, ['fulfilled', 'failed']);
      expect(refused.status, JSON.stringify(refused)).toBe('failed');
      expect(JSON.stringify(refused)).toMatch(/in use/);
      expect(await nodeContainers()).toEqual([]);
      expect(await sys.db.query('select status, desired_nodes from pools where id = $1', [poolId])).toEqual([{ status: 'active', desired_nodes: 0 }]);

      // A restart reconciles every pool with the engine: the pool the tenant deleted stays empty.
      await sys.processes('exit-node-manager')[0]!.stop('SIGTERM');
      const restarted = await sys.start('exit-node-manager');
      await restarted.waitForLog(/reconciled every pool/, 30_000);
      expect(await nodeContainers()).toEqual([]);
    } finally {
      await blocker.remove({ force: true });
    }

    const deleted = await order({ type: 'pool.delete', poolId }, ['fulfilled', 'failed']);
    expect(deleted.status, JSON.stringify(deleted)).toBe('fulfilled');
    expect((await docker.listVolumes({ filters: poolLabel })).Volumes ?? []).toEqual([]);
    expect(await sys.db.query('select status from pools where id = $1', [poolId])).toEqual([{ status: 'deleted' }]);
  });
});
