import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { HEADERS, type Payload, type ReplyOf } from '@switchyard/contracts';
import { requestPoolSnapshot } from '@switchyard/service-kit';
import { freePort, natsRequest, proxiedGet, startLoopbackTarget, startTestSystem, type LoopbackTarget, type TestSystem } from '@switchyard/testkit';

// pool.req.snapshot at scale, and with a bad row. exit-node-manager's tables get, besides one
// real exit pool made through the API: 400 pools with env enough to pass 1 MB of snapshot (the
// default NATS max_payload), and one pool whose spec fails its schema (nodes.min 500, as an old
// appendNode wrote). Rows are written straight into the manager's tables, as a migration or an
// old bug would have. The followers start afterwards, so they know the real pool only from the
// snapshot, which now comes in pages, with the real pool on the last one.

// Tenants that sort before any random one: the real tenant's pool comes last in the snapshot.
const FILLER_TENANT = '00000000-0000-4000-8000-000000000001';
const BAD_TENANT = '00000000-0000-4000-8000-000000000002';
const FILLER_POOLS = 400;
const FILLER_ENV = Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`FILLER_${i}`, 'x'.repeat(480)]));
const MB = 1024 * 1024;

describe('pool.req.snapshot with more than 1 MB of pools and a bad pool row', () => {
  let sys: TestSystem;
  let nc: NatsConnection;
  let target: LoopbackTarget;
  let jpPort: number;
  let tenantId: string;
  let realPoolId: string;
  let realNodeId: string;
  let sleepyPoolId: string;
  let badPoolId: string;

  beforeAll(async () => {
    target = await startLoopbackTarget();
    jpPort = await freePort();
    sys = await startTestSystem({ services: ['api-gateway', 'exit-node-manager'] });
    nc = await sys.natsClient();
    const placed = await sys.http('POST', '/v1/orders', {
      body: { type: 'pool.create', pool: { name: 'exit-jp', kind: 'exit', country: 'JP', network: 'host', nodes: { min: 1, max: 1 } } },
    });
    expect(placed.status, JSON.stringify(placed.body)).toBe(202);
    const done = await sys.waitForOrder(placed.body.id, ['fulfilled', 'failed'], { timeoutMs: 60_000 });
    expect(done.status, JSON.stringify(done)).toBe('fulfilled');
    [realNodeId] = done.result.nodeIds;
    const [real] = await sys.db.query<{ tenant_id: string; id: string }>("select tenant_id, id from pools where name = 'exit-jp'");
    tenantId = real!.tenant_id;
    realPoolId = real!.id;

    await sys.db.query(
      `insert into pools (tenant_id, id, name, kind, spec, desired_nodes, status)
       select $1::uuid, gen_random_uuid(), 'filler-' || i, 'exit',
              jsonb_build_object('name', 'filler-' || i, 'kind', 'exit', 'country', 'DE', 'nodes', jsonb_build_object('min', 1, 'max', 1), 'env', $2::jsonb),
              1, 'active'
       from generate_series(1, ${FILLER_POOLS}) i`,
      [FILLER_TENANT, JSON.stringify(FILLER_ENV)],
    );
    badPoolId = randomUUID();
    const badSpec = { name: 'broken', kind: 'exit', country: 'DE', nodes: { min: 500, max: 500 } };
    await sys.db.query(`insert into pools (tenant_id, id, name, kind, spec, desired_nodes, status) values ($1, $2, 'broken', 'exit', $3, 1, 'active')`, [
      BAD_TENANT,
      badPoolId,
      JSON.stringify(badSpec),
    ]);
    // Stopped nodes: nothing to check, route or start, but rows every follower takes in.
    await sys.db.query(
      `insert into nodes (tenant_id, id, pool_id, ordinal, name, status)
       select tenant_id, gen_random_uuid(), id, 1, name || '-1', 'stopped' from pools where tenant_id in ($1, $2)`,
      [FILLER_TENANT, BAD_TENANT],
    );
    // The real tenant's second pool, after exit-jp by name: a sleep policy the sleep-controller
    // can only learn from its spec in the snapshot. No nodes, so nothing is ever put to sleep.
    sleepyPoolId = randomUUID();
    const sleepy = {
      name: 'zz-sleepy',
      kind: 'exit',
      country: 'DE',
      nodes: { min: 0, max: 1 },
      sleep: { enabled: true, idleWindowSec: 600, minAwake: 0, probeIntervalMs: 30, probeTimeoutMs: 10_000 },
    };
    await sys.db.query(`insert into pools (tenant_id, id, name, kind, spec, desired_nodes, status) values ($1, $2, 'zz-sleepy', 'exit', $3, 0, 'active')`, [
      tenantId,
      sleepyPoolId,
      JSON.stringify(sleepy),
    ]);
  }, 120_000);

  afterAll(async () => {
    await sys?.close();
    await target?.close();
  });

  it('serves every other pool in pages under the NATS limit, the real pool on the last, and dead-letters the bad row', async () => {
    const pages: Array<ReplyOf<'pool.req.snapshot'>> = [];
    const sizes: number[] = [];
    const ask = async (q: Payload<'pool.req.snapshot'>) => {
      const reply = await nc.request('pool.req.snapshot', JSON.stringify(q), { timeout: 10_000 });
      sizes.push(reply.data.length);
      const page = reply.json<ReplyOf<'pool.req.snapshot'>>();
      pages.push(page);
      return page;
    };
    const snapshot = await requestPoolSnapshot(ask);
    expect(snapshot.pages).toBeGreaterThanOrEqual(2);
    expect(sizes.reduce((a, b) => a + b, 0)).toBeGreaterThan(MB);
    for (const size of sizes) expect(size).toBeLessThanOrEqual(nc.info!.max_payload);

    const poolIds = new Set(snapshot.pools.map((p) => p.poolId));
    expect(snapshot.pools.filter((p) => p.tenantId === FILLER_TENANT)).toHaveLength(FILLER_POOLS);
    expect(snapshot.nodes.filter((n) => n.tenantId === FILLER_TENANT)).toHaveLength(FILLER_POOLS);
    expect(poolIds.has(realPoolId) && poolIds.has(sleepyPoolId)).toBe(true);
    expect(poolIds.has(badPoolId)).toBe(false);
    expect(snapshot.nodes.some((n) => n.tenantId === BAD_TENANT)).toBe(false);
    expect(snapshot.skipped).toBe(2);
    const last = pages.at(-1)!;
    expect(last.pools.map((p) => p.poolId)).toEqual(expect.arrayContaining([realPoolId, sleepyPoolId]));
    expect(last.nodes.map((n) => n.nodeId)).toContain(realNodeId);

    const jsm = await jetstreamManager(nc);
    const dead = await jsm.streams.getMessage('DLQ', { last_by_subj: 'dlq.pool.req.snapshot' });
    expect(dead?.header.get(HEADERS.deadLetterService)).toBe('exit-node-manager');
    expect(dead?.header.get(HEADERS.deadLetterReason)).toMatch(new RegExp(`pool ${badPoolId} \\(with its 1 nodes\\) of tenant ${BAD_TENANT} .*spec\\.nodes\\.min`));
    expect(dead?.json()).toEqual({ kind: 'pool', tenantId: BAD_TENANT, poolId: badPoolId });

    // One tenant's snapshot, as the API asks for it, comes through the same pages.
    const listed = await sys.http('GET', '/v1/pools');
    expect(listed.status).toBe(200);
    expect(listed.body.pools.map((p: { id: string }) => p.id).sort()).toEqual([realPoolId, sleepyPoolId].sort());
  });

  it('lets every following service rebuild: the load balancer routes the real pool, the others know it', async () => {
    await Promise.all([
      sys.start('load-balancer', { LB_PROXY_PORT: String(await freePort()), LB_COUNTRY_PORTS: `JP=${jpPort}`, LB_WORKERS: '1' }),
      sys.start('health-monitor', { HEALTH_PROXY_TARGET: `${target.url}/204` }),
      sys.start('sleep-controller'),
      sys.start('socket-activator'),
    ]);

    const routed = await vi.waitFor(
      async () => {
        const res = await proxiedGet(jpPort, `${target.url}/hello`, 2_000);
        expect(res.status).toBe(200);
        return res;
      },
      { timeout: 15_000, interval: 200 },
    );
    expect(routed).toMatchObject({ body: 'hello', via: realNodeId });

    await vi.waitFor(
      async () => {
        const health = await natsRequest<ReplyOf<'health.req.status'>>(nc, 'health.req.status', { tenantId, nodeIds: [realNodeId] });
        expect(health.nodes).toMatchObject([{ nodeId: realNodeId, poolId: realPoolId, status: 'healthy' }]);
      },
      { timeout: 20_000, interval: 250 },
    );

    await vi.waitFor(
      async () => {
        const policies = await natsRequest<ReplyOf<'sleep.req.policy'>>(nc, 'sleep.req.policy', { tenantId, poolId: sleepyPoolId });
        expect(policies.policies).toMatchObject([{ tenantId, poolId: sleepyPoolId, policy: { enabled: true, idleWindowSec: 600 } }]);
      },
      { timeout: 15_000, interval: 250 },
    );

    await vi.waitFor(
      async () => {
        const state = await natsRequest<ReplyOf<'activator.req.state'>>(nc, 'activator.req.state', { tenantId, nodeIds: [realNodeId] });
        expect(state.nodes).toMatchObject([{ nodeId: realNodeId, poolId: realPoolId, state: 'awake' }]);
      },
      { timeout: 15_000, interval: 250 },
    );

    // None of them came up blind: each rebuilt from the paged snapshot without an error.
    for (const name of ['load-balancer', 'health-monitor', 'sleep-controller', 'socket-activator'] as const) {
      for (const p of sys.processes(name)) expect(p.output(), name).not.toMatch(/could not rebuild/);
    }
  }, 90_000);

  it("a member who grows the snapshot by a megabyte through the API breaks nobody's rebuild", async () => {
    const member = await sys.http('POST', '/v1/tenants', { body: { name: 'hoarder' } });
    expect(member.status, JSON.stringify(member.body)).toBe(201);
    // Pools without nodes cost the member no containers; each is as large as a request may be.
    const env = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`BULK_${i}`, 'z'.repeat(4000)]));
    const orders: string[] = [];
    for (let i = 0; i < 5; i++) {
      const placed = await sys.http('POST', '/v1/orders', {
        key: member.body.apiKey,
        body: { type: 'pool.create', pool: { name: `bulk-${i}`, kind: 'exit', country: 'DE', env, nodes: { min: 0, max: 1 } } },
      });
      expect(placed.status, JSON.stringify(placed.body).slice(0, 300)).toBe(202);
      orders.push(placed.body.id);
    }
    for (const id of orders) expect((await sys.waitForOrder(id, ['fulfilled', 'failed'], { key: member.body.apiKey })).status).toBe('fulfilled');

    const sizes: number[] = [];
    const snapshot = await requestPoolSnapshot(async (q) => {
      const reply = await nc.request('pool.req.snapshot', JSON.stringify(q), { timeout: 10_000 });
      sizes.push(reply.data.length);
      return reply.json<ReplyOf<'pool.req.snapshot'>>();
    });
    expect(sizes.reduce((a, b) => a + b, 0)).toBeGreaterThan(2 * MB);
    expect(snapshot.pools.filter((p) => p.name.startsWith('bulk-'))).toHaveLength(5);

    // A load balancer that starts now rebuilds from all of it, and routes the other tenant.
    const otherJpPort = await freePort();
    await sys.start('load-balancer', { LB_PROXY_PORT: String(await freePort()), LB_COUNTRY_PORTS: `JP=${otherJpPort}`, LB_WORKERS: '1' });
    const routed = await vi.waitFor(
      async () => {
        const res = await proxiedGet(otherJpPort, `${target.url}/hello`, 2_000);
        expect(res.status).toBe(200);
        return res;
      },
      { timeout: 15_000, interval: 200 },
    );
    expect(routed).toMatchObject({ body: 'hello', via: realNodeId });
  }, 90_000);
});
