import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { docker, EXIT_NODE_IMAGE, startTestSystem, type TestSystem } from '@switchyard/testkit';

// A member whose pool runs the exit-node image as an app (POOL_IMAGES lets it by default) asks
// its proxy to reach every network. The test system's operator value is 127.0.0.1/32.

describe('FIREWALL_OUTBOUND_SUBNETS of an app pool', () => {
  let sys: TestSystem;
  beforeAll(async () => {
    sys = await startTestSystem({ services: ['api-gateway', 'exit-node-manager'] });
  });
  afterAll(async () => {
    await sys?.close();
  });

  it("is the operator's value, not the one a member puts in the pool's env", async () => {
    const tenant = await sys.http('POST', '/v1/tenants', { body: { name: 'mallory' } });
    expect(tenant.status, JSON.stringify(tenant.body)).toBe(201);
    const key = tenant.body.apiKey as string;
    const placed = await sys.http('POST', '/v1/orders', {
      key,
      body: {
        type: 'pool.create',
        pool: {
          name: 'px',
          kind: 'app',
          image: EXIT_NODE_IMAGE,
          ports: [{ name: 'proxy', containerPort: 8888 }],
          nodes: { min: 1, max: 1 },
          env: { FIREWALL_OUTBOUND_SUBNETS: '0.0.0.0/0,::/0' },
        },
      },
    });
    expect(placed.status, JSON.stringify(placed.body)).toBe(202);
    const done = await sys.waitForOrder(placed.body.id, ['fulfilled', 'failed'], { key, timeoutMs: 60_000 });
    expect(done.status, JSON.stringify(done)).toBe('fulfilled');
    const [c] = await docker.listContainers({ all: true, filters: { label: [`io.switchyard.node=${done.result.nodeIds[0]}`] } });
    const env = (await docker.getContainer(c!.Id).inspect()).Config.Env;
    expect(env.filter((e) => e.startsWith('FIREWALL_OUTBOUND_SUBNETS='))).toEqual(['FIREWALL_OUTBOUND_SUBNETS=127.0.0.1/32']);
  });
});
