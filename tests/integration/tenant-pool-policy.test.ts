import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_NODE_IMAGE, startTestSystem, type TestSystem } from '@switchyard/testkit';

// A member key belongs to a customer who may attack: it orders what the operator allows
// (images, host network, resources) and no more than its quotas. The gateway runs with small
// quotas so each one is reached in a few orders; the refusals are what the member would see.
describe('the pool policy of member keys', () => {
  let sys: TestSystem;
  const keys: Record<string, string> = {};

  const tenant = async (name: string) => {
    const res = await sys.http('POST', '/v1/tenants', { body: { name } });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    keys[name] = res.body.apiKey;
    return res.body.apiKey as string;
  };
  const order = (key: string | undefined, body: unknown) => sys.http('POST', '/v1/orders', { body, ...(key ? { key } : {}) });
  const exitPool = (name: string, extra: Record<string, unknown> = {}, nodes = { min: 0, max: 1 }) => ({
    type: 'pool.create',
    pool: { name, kind: 'exit', country: 'JP', nodes, ...extra },
  });
  const refusal = (res: { status: number; body: any }) => ({ status: res.status, error: res.body.error, issues: res.body.issues });

  beforeAll(async () => {
    sys = await startTestSystem();
    await sys.start('exit-node-manager');
    await sys.start('api-gateway', {
      TENANT_MAX_POOLS: '3',
      TENANT_MAX_NODES: '4',
      TENANT_NODE_ADDS_PER_MINUTE: '2',
      HOST_NETWORK_TENANTS: 'trusted',
    });
    await tenant('acme');
    await tenant('trusted');
    await tenant('burst');
  }, 90_000);
  afterAll(async () => {
    await sys?.close();
  });

  it('carries out the order of a member within its limits', async () => {
    const placed = await order(keys['acme'], exitPool('tokyo', {}, { min: 1, max: 1 }));
    expect(placed.status, JSON.stringify(placed.body)).toBe(202);
    const done = await sys.waitForOrder(placed.body.id, ['fulfilled', 'failed'], { key: keys['acme']!, timeoutMs: 60_000 });
    expect(done.status, JSON.stringify(done)).toBe('fulfilled');
    const app = await order(keys['acme'], {
      type: 'pool.create',
      pool: {
        name: 'web',
        kind: 'app',
        image: EXIT_NODE_IMAGE,
        ports: [{ name: 'web', containerPort: 8000 }],
        nodes: { min: 0, max: 1 },
        resources: { memoryMb: 2048, cpus: 2, pids: 512 },
      },
    });
    expect(app.status, JSON.stringify(app.body)).toBe(202);
  });

  it('refuses a member the host network with 403 naming pool.network, unless its tenant is listed', async () => {
    const res = await order(keys['acme'], exitPool('host-net', { network: 'host' }));
    expect(refusal(res)).toEqual({
      status: 403,
      error: 'forbidden',
      issues: [{ field: 'pool.network', message: 'network "host" is for the operator and the tenants it lists (HOST_NETWORK_TENANTS)' }],
    });
    expect((await order(keys['trusted'], exitPool('host-net', { network: 'host' }))).status).toBe(202);
  });

  it('refuses a member an image the operator did not list with 403 naming pool.image', async () => {
    for (const image of ['alpine:3', 'docker.io/switchyard/exit-node:dev', `${EXIT_NODE_IMAGE}-evil`]) {
      const res = await order(keys['acme'], {
        type: 'pool.create',
        pool: { name: 'miner', kind: 'app', image, ports: [{ name: 'p', containerPort: 80 }], nodes: { min: 0, max: 1 } },
      });
      expect(res.status, image).toBe(403);
      expect(res.body.issues).toEqual([{ field: 'pool.image', message: `image "${image}" is not allowed here; allowed: ${EXIT_NODE_IMAGE} (POOL_IMAGES)` }]);
    }
  });

  it('refuses resources over the operator maxima with 403 naming each field and its limit', async () => {
    const res = await order(keys['acme'], exitPool('greedy', { resources: { memoryMb: 65_536, cpus: 16, pids: 100_000 } }));
    expect(refusal(res)).toEqual({
      status: 403,
      error: 'forbidden',
      issues: [
        { field: 'pool.resources.memoryMb', message: 'at most 2048 (POOL_MAX_MEMORY_MB)' },
        { field: 'pool.resources.cpus', message: 'at most 2 (POOL_MAX_CPUS)' },
        { field: 'pool.resources.pids', message: 'at most 512 (POOL_MAX_PIDS)' },
      ],
    });
  });

  it('refuses pools past TENANT_MAX_POOLS with 403, even when the orders race each other', async () => {
    // acme holds tokyo and web: one pool left, whichever of four simultaneous orders comes first.
    const raced = await Promise.all(['r1', 'r2', 'r3', 'r4'].map((name) => order(keys['acme'], exitPool(name))));
    expect(raced.map((r) => r.status).sort()).toEqual([202, 403, 403, 403]);
    for (const r of raced.filter((r) => r.status === 403)) {
      expect(r.body.issues).toEqual([{ field: 'pool', message: expect.stringMatching(/^a tenant may have at most 3 pools \(TENANT_MAX_POOLS\)/) }]);
    }
  });

  it('refuses node capacity past TENANT_MAX_NODES with 403 naming nodes.max', async () => {
    const { pools } = (await sys.http('GET', '/v1/pools', { key: keys['acme']! })).body;
    const web = pools.find((p: { name: string }) => p.name === 'web');
    // tokyo 1 + web 1 + the raced pool 1 = 3 of 4: web may grow by one node, not two.
    const res = await order(keys['acme'], { type: 'pool.scale', poolId: web.id, nodes: { min: 0, max: 3 } });
    expect(res.status).toBe(403);
    expect(res.body.issues).toEqual([{ field: 'nodes.max', message: expect.stringContaining('at most 4 nodes in all (TENANT_MAX_NODES') }]);
    expect((await order(keys['acme'], { type: 'pool.scale', poolId: web.id, nodes: { min: 0, max: 2 } })).status).toBe(202);
  });

  it('answers node additions past TENANT_NODE_ADDS_PER_MINUTE with 429 and Retry-After, on /v1 and /api alike', async () => {
    const key = keys['burst']!;
    for (let i = 0; i < 2; i++) expect((await order(key, { type: 'node.add', country: 'jp' })).status).toBe(202);
    const res = await order(key, { type: 'node.add', country: 'jp' });
    expect(res.status).toBe(429);
    expect(res.body.issues).toEqual([
      { field: 'country', message: expect.stringMatching(/^at most 2 node additions per minute \(TENANT_NODE_ADDS_PER_MINUTE\); retry in \d+ s$/) },
    ]);
    const retryAfter = Number(res.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    const compat = await sys.http('POST', '/api/nodes/jp/start', { key });
    expect(compat.status).toBe(429);
    expect(compat.headers.get('retry-after')).not.toBeNull();
    // The budget is the tenant's own.
    expect((await order(keys['trusted'], { type: 'node.add', country: 'de' })).status).toBe(202);
  });

  it('does not limit the admin key in images, networks or quotas', async () => {
    const admin = await order(undefined, {
      type: 'pool.create',
      pool: { name: 'ops', kind: 'app', image: 'operator/tool:1', network: 'host', ports: [{ name: 'p', containerPort: 80, env: 'PORT' }], nodes: { min: 0, max: 50 } },
    });
    expect(admin.status, JSON.stringify(admin.body)).toBe(202);
  });

  it('keeps serving after every refusal', async () => {
    expect((await sys.http('GET', '/v1/orders', { key: keys['acme']! })).status).toBe(200);
    expect((await sys.http('GET', '/healthz', { key: null })).status).toBe(200);
  });
});
