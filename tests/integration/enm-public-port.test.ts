import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_NODE_IMAGE, startTestSystem, type TestSystem } from '@switchyard/testkit';

// The load balancer listens on an app pool's publicPort for all tenants at once: two live
// pools, whatever their tenants, never share one; a deleted pool frees its port.
describe('exit-node-manager keeps app pools’ public ports unique', () => {
  let sys: TestSystem;
  let otherKey: string;

  beforeAll(async () => {
    sys = await startTestSystem({ services: ['api-gateway', 'exit-node-manager'] });
    const other = await sys.http('POST', '/v1/tenants', { body: { name: 'other' } });
    expect(other.status, JSON.stringify(other.body)).toBe(201);
    otherKey = other.body.apiKey;
  });
  afterAll(async () => {
    await sys?.close();
  });

  const appPool = (name: string, publicPort: number) => ({
    type: 'pool.create',
    pool: { name, kind: 'app', image: EXIT_NODE_IMAGE, nodes: { min: 0, max: 1 }, publicPort, ports: [{ name: 'web', containerPort: 8888 }] },
  });
  const place = async (body: unknown, key?: string) => {
    const placed = await sys.http('POST', '/v1/orders', { body, ...(key ? { key } : {}) });
    expect(placed.status, JSON.stringify(placed.body)).toBe(202);
    return placed.body.id as string;
  };
  const settle = (id: string, key?: string) => sys.waitForOrder(id, ['fulfilled', 'failed'], { timeoutMs: 30_000, ...(key ? { key } : {}) });

  it("refuses a pool whose publicPort another tenant's live pool has, and frees it when that pool is deleted", async () => {
    const first = await settle(await place(appPool('web', 18601)));
    expect(first.status, JSON.stringify(first)).toBe('fulfilled');

    const taken = await settle(await place(appPool('web', 18601), otherKey), otherKey);
    expect(taken).toMatchObject({ status: 'failed' });
    expect(taken.reason).toMatch(/publicPort 18601 is taken/);
    // Same tenant, another name: the port is still the conflict.
    const sameTenant = await settle(await place(appPool('web-2', 18601)));
    expect(sameTenant.reason).toMatch(/publicPort 18601 is taken/);

    expect((await settle(await place(appPool('web', 18602), otherKey), otherKey)).status).toBe('fulfilled');

    const deleted = await settle(await place({ type: 'pool.delete', poolId: first.result.poolId }));
    expect(deleted.status, JSON.stringify(deleted)).toBe('fulfilled');
    expect((await settle(await place(appPool('web-3', 18601), otherKey), otherKey)).status).toBe('fulfilled');
  });

  it('of two creates racing for one publicPort, exactly one wins', async () => {
    const ids = await Promise.all([place(appPool('race', 18603)), place(appPool('race', 18603), otherKey)]);
    const outcomes = await Promise.all([settle(ids[0]!), settle(ids[1]!, otherKey)]);
    expect(outcomes.map((o) => o.status).sort()).toEqual(['failed', 'fulfilled']);
    expect(outcomes.find((o) => o.status === 'failed')!.reason).toMatch(/publicPort 18603 is taken/);
  });
});
