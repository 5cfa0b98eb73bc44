import { describe, expect, it } from 'vitest';
import type { PoolSpec } from '@switchyard/contracts';
import { ServiceUnavailable } from '../src/http/errors.js';
import type { Caller } from '../src/keys.js';
import { createPoolGuard, nodeAddLimiter, type NodeAddLimiter } from '../src/orders/pool-guard.js';
import { afterOrder, capacityOf, limitsOf, nodeAdditions, quotaRefusals, specRefusals, withPending, type PoolUsage } from '../src/orders/pool-policy.js';
import type { OrderRequest } from '../src/orders/schemas.js';
import { defaultPolicyConfig, limits } from './fakes.js';

const member: Caller = { tenantId: '0b9f4f2e-6a2d-4c1e-9a51-3f5e8f0c2d11', tenantName: 'acme', role: 'member', scopes: ['write'] };
const admin: Caller = { tenantId: '11111111-2222-4333-8444-555555555555', tenantName: 'admin', role: 'admin', scopes: ['admin'] };
const exitPool: PoolSpec = { name: 'tokyo', kind: 'exit', country: 'JP', nodes: { min: 1, max: 2 } };
const appPool: PoolSpec = { name: 'web', kind: 'app', image: 'switchyard/exit-node:dev', ports: [{ name: 'web', containerPort: 80 }], nodes: { min: 1, max: 1 } };
const pool = (poolId: string, name: string, min: number, max: number): PoolUsage => ({ poolId, name, kind: 'exit', country: 'JP', min, max });
const paths = (issues: { path: string }[]) => issues.map((i) => i.path);

describe('limitsOf', () => {
  it('allows only the exit-node image when POOL_IMAGES is unset, and reads comma lists with spaces', () => {
    expect(limits.images).toEqual(['switchyard/exit-node:dev']);
    expect(limits.hostNetworkTenants).toEqual([]);
    const listed = limitsOf({ ...defaultPolicyConfig(), POOL_IMAGES: ' a:1, b@sha256:00 ,,', HOST_NETWORK_TENANTS: 'acme, 0b9f4f2e-6a2d-4c1e-9a51-3f5e8f0c2d11' });
    expect(listed.images).toEqual(['a:1', 'b@sha256:00']);
    expect(listed.hostNetworkTenants).toEqual(['acme', '0b9f4f2e-6a2d-4c1e-9a51-3f5e8f0c2d11']);
  });
});

describe('specRefusals', () => {
  it('lets a member run the listed image, and an exit pool without image (the default exit image)', () => {
    expect(specRefusals(appPool, member, limits)).toEqual([]);
    expect(specRefusals(exitPool, member, limits)).toEqual([]);
  });

  it('refuses a member an unlisted image, naming pool.image and the allowed list', () => {
    expect(specRefusals({ ...appPool, image: 'alpine:3' }, member, limits)).toEqual([
      { path: 'pool.image', message: 'image "alpine:3" is not allowed here; allowed: switchyard/exit-node:dev (POOL_IMAGES)' },
    ]);
    // The same image under another name is another name: compared as written.
    expect(paths(specRefusals({ ...exitPool, image: 'docker.io/switchyard/exit-node:dev' }, member, limits))).toEqual(['pool.image']);
  });

  it('refuses a member the host network unless its tenant is listed by id or name; the admin tenant may', () => {
    const host = { ...exitPool, network: 'host' as const };
    expect(specRefusals(host, member, limits)).toEqual([{ path: 'pool.network', message: 'network "host" is for the operator and the tenants it lists (HOST_NETWORK_TENANTS)' }]);
    expect(specRefusals({ ...exitPool, network: 'bridge' }, member, limits)).toEqual([]);
    for (const listed of [member.tenantName, member.tenantId]) {
      expect(specRefusals(host, member, { ...limits, hostNetworkTenants: ['other', listed] })).toEqual([]);
    }
    // HTTP Basic callers of /api act as members of a tenant, possibly the admin tenant.
    expect(specRefusals(host, { ...member, tenantName: 'admin' }, limits)).toEqual([]);
  });

  it('does not limit admin keys in images or networks', () => {
    expect(specRefusals({ ...appPool, image: 'anything:else', network: 'host', ports: [{ name: 'web', containerPort: 80, env: 'PORT' }] }, admin, limits)).toEqual([]);
  });

  it('holds everyone, admin too, to the resource maxima, naming the field and the variable', () => {
    const big = { ...exitPool, resources: { memoryMb: 4096, cpus: 2.5, pids: 513 } };
    const expected = [
      { path: 'pool.resources.memoryMb', message: 'at most 2048 (POOL_MAX_MEMORY_MB)' },
      { path: 'pool.resources.cpus', message: 'at most 2 (POOL_MAX_CPUS)' },
      { path: 'pool.resources.pids', message: 'at most 512 (POOL_MAX_PIDS)' },
    ];
    expect(specRefusals(big, member, limits)).toEqual(expected);
    expect(specRefusals(big, admin, limits)).toEqual(expected);
    expect(specRefusals({ ...exitPool, resources: { memoryMb: 2048, cpus: 2, pids: 512 } }, member, limits)).toEqual([]);
  });
});

describe('quotas', () => {
  const small = { ...limits, maxPools: 2, maxNodes: 5 };
  const create = (max: number, min = 0): OrderRequest => ({ type: 'pool.create', pool: { ...exitPool, nodes: { min, max } } });

  it('counts node capacity as the sum of nodes.max', () => {
    expect(capacityOf([pool('a', 'a', 1, 3), pool('b', 'b', 0, 2)])).toBe(5);
  });

  it('refuses a pool past TENANT_MAX_POOLS, naming the field and the limit', () => {
    const two = [pool('a', 'a', 0, 1), pool('b', 'b', 0, 1)];
    expect(quotaRefusals(two, create(1), small)).toEqual([{ path: 'pool', message: 'a tenant may have at most 2 pools (TENANT_MAX_POOLS); it has 2' }]);
    expect(quotaRefusals([pool('a', 'a', 0, 1)], create(1), small)).toEqual([]);
  });

  it('refuses node capacity past TENANT_MAX_NODES on create, scale-up and node.add', () => {
    const held = [pool('a', 'exit-jp', 4, 4)];
    const [byCreate] = quotaRefusals(held, create(2), small);
    expect(byCreate).toEqual({ path: 'pool.nodes.max', message: expect.stringContaining('at most 5 nodes in all (TENANT_MAX_NODES') });
    expect(byCreate!.message).toContain('they hold 4 and this order makes it 6');
    expect(paths(quotaRefusals(held, { type: 'pool.scale', poolId: 'a', nodes: { min: 4, max: 6 } }, small))).toEqual(['nodes.max']);
    expect(quotaRefusals(held, { type: 'pool.scale', poolId: 'a', nodes: { min: 5, max: 5 } }, small)).toEqual([]);
    // node.add fills the pool past its max: capacity 5, then 6.
    const full = afterOrder(held, { type: 'node.add', country: 'jp' });
    expect(capacityOf(full)).toBe(5);
    expect(quotaRefusals(held, { type: 'node.add', country: 'JP' }, small)).toEqual([]);
    expect(paths(quotaRefusals(full, { type: 'node.add', country: 'jp' }, small))).toEqual(['country']);
  });

  it('counts the pool node.add creates when the country has none', () => {
    const two = [pool('a', 'a', 0, 1), pool('b', 'b', 0, 1)];
    expect(paths(quotaRefusals(two, { type: 'node.add', country: 'de' }, small))).toEqual(['country']);
    expect(afterOrder([], { type: 'node.add', country: 'de' })).toEqual([expect.objectContaining({ name: 'exit-de', min: 1, max: 1 })]);
  });

  it('lets a tenant over a lowered quota scale down and delete', () => {
    const over = [pool('a', 'a', 0, 5), pool('b', 'b', 0, 5), pool('c', 'c', 0, 5)];
    expect(quotaRefusals(over, { type: 'pool.scale', poolId: 'a', nodes: { min: 0, max: 1 } }, small)).toEqual([]);
    expect(quotaRefusals(over, { type: 'pool.delete', poolId: 'a' }, small)).toEqual([]);
    expect(quotaRefusals(over, { type: 'node.stop', nodeId: 'a' }, small)).toEqual([]);
  });
});

describe('withPending', () => {
  it('adds orders still on their way, and not those the snapshot already shows', () => {
    const snapshot = [pool('a', 'exit-jp', 1, 1)];
    const usage = withPending(snapshot, new Set(['known-node']), [
      { request: { type: 'pool.create', pool: { ...exitPool, name: 'p1', nodes: { min: 0, max: 3 } } }, result: { poolId: 'p1' } },
      { request: { type: 'pool.create', pool: { ...exitPool, name: 'a', nodes: { min: 0, max: 9 } } }, result: { poolId: 'a' } },
      { request: { type: 'node.add', country: 'jp' }, result: { nodeId: 'new-node' } },
      { request: { type: 'node.add', country: 'jp' }, result: { nodeId: 'known-node' } },
      { request: { type: 'pool.scale', poolId: 'p1', nodes: { min: 1, max: 2 } }, result: { poolId: 'p1' } },
    ]);
    expect(usage.map((p) => [p.poolId, p.min, p.max])).toEqual([
      ['a', 2, 2],
      ['p1', 1, 3],
    ]);
  });
});

describe('nodeAdditions', () => {
  const held = [pool('a', 'a', 2, 10)];
  it('counts node.add as one, a new pool its nodes.min, a scale-up what it adds, capped at a minute', () => {
    expect(nodeAdditions(held, { type: 'node.add', country: 'jp' }, limits)).toBe(1);
    expect(nodeAdditions(held, { type: 'pool.create', pool: { ...exitPool, nodes: { min: 3, max: 3 } } }, limits)).toBe(3);
    expect(nodeAdditions(held, { type: 'pool.scale', poolId: 'a', nodes: { min: 5, max: 10 } }, limits)).toBe(3);
    expect(nodeAdditions(held, { type: 'pool.scale', poolId: 'a', nodes: { min: 1, max: 10 } }, limits)).toBe(0);
    expect(nodeAdditions(held, { type: 'pool.create', pool: { ...exitPool, nodes: { min: 90, max: 90 } } }, { ...limits, nodeAddsPerMinute: 30 })).toBe(30);
  });
});

describe('the guard', () => {
  const reply = () => {
    const headers: Record<string, string> = {};
    return { headers, header: (name: string, value: string) => (headers[name] = value) };
  };
  const fakeDb = { selectFrom: () => chain } as never;
  const chain: Record<string, unknown> = {};
  for (const m of ['select', 'where']) chain[m] = () => chain;
  chain['execute'] = async () => [];
  chain['executeTakeFirst'] = async () => undefined;

  it('spends the node budget and answers 429 with Retry-After once it is gone', async () => {
    const guard = createPoolGuard({
      db: fakeDb,
      fleet: { snapshot: async () => ({ pools: [], nodes: [] }) },
      limits: { ...limits, nodeAddsPerMinute: 2 },
      limiter: nodeAddLimiter(2),
    });
    const add: OrderRequest = { type: 'node.add', country: 'jp' };
    const placed = () => Promise.resolve('placed');
    expect(await guard.place(member, add, undefined, reply(), placed)).toBe('placed');
    expect(await guard.place(member, add, undefined, reply(), placed)).toBe('placed');
    const r = reply();
    const refused = await guard.place(member, add, undefined, r, placed).catch((e) => e);
    expect(refused).toMatchObject({
      statusCode: 429,
      error: 'rate_limited',
      issues: [{ path: 'country', message: expect.stringContaining('at most 2 node additions per minute (TENANT_NODE_ADDS_PER_MINUTE)') }],
    });
    expect(Number(r.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(Number(r.headers['retry-after'])).toBeLessThanOrEqual(60);
    // Another tenant has a budget of its own; the admin has none to spend.
    expect(await guard.place({ ...member, tenantId: 'other' }, add, undefined, reply(), placed)).toBe('placed');
    expect(await guard.place(admin, add, undefined, reply(), placed)).toBe('placed');
  });

  it("fails closed when exit-node-manager cannot say what the tenant holds: the member's order is not placed", async () => {
    const guard = createPoolGuard({
      db: fakeDb,
      fleet: {
        snapshot: async () => {
          throw new ServiceUnavailable('exit-node-manager');
        },
      },
      limits,
      limiter: nodeAddLimiter(30),
    });
    let placed = 0;
    const place = async () => {
      placed++;
    };
    await expect(guard.place(member, { type: 'node.add', country: 'jp' }, undefined, reply(), place)).rejects.toBeInstanceOf(ServiceUnavailable);
    expect(placed).toBe(0);
    // Orders that add nothing, and the admin's, do not need the count.
    await guard.place(member, { type: 'node.stop', nodeId: 'n' }, undefined, reply(), place);
    await guard.place(admin, { type: 'node.add', country: 'jp' }, undefined, reply(), place);
    expect(placed).toBe(2);
  });

  it('does not spend the budget on an order a quota refuses, nor place it', async () => {
    const spent: number[] = [];
    const limiter: NodeAddLimiter = { consume: async (_t, points) => (spent.push(points), { ok: true }) };
    const full = Array.from({ length: 20 }, (_, i) => ({ poolId: `p${i}`, name: `p${i}`, spec: { ...exitPool, name: `p${i}`, nodes: { min: 0, max: 1 } } }));
    const guard = createPoolGuard({ db: fakeDb, fleet: { snapshot: async () => ({ pools: full as never, nodes: [] }) }, limits, limiter });
    let placed = 0;
    const refused = await guard
      .place(member, { type: 'pool.create', pool: exitPool }, undefined, reply(), async () => {
        placed++;
      })
      .catch((e) => e);
    expect(refused).toMatchObject({ statusCode: 403, issues: [{ path: 'pool', message: expect.stringContaining('TENANT_MAX_POOLS') }] });
    expect(placed).toBe(0);
    expect(spent).toEqual([]);
  });
});
