import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { createBus } from '@switchyard/bus';
import { CONSUMERS, HEADERS } from '@switchyard/contracts';
import { eventually, poolOrder, startNatsServer, startTestSystem, type NatsServer, type TestSystem } from '@switchyard/testkit';

// Every order ends: a command the bus gives up on fails its order with the reason, and an order
// nobody carries out is failed by the gateway's sweeper after ORDER_STALE_AFTER_MS.

async function insertOrder(sys: TestSystem, tenantId: string): Promise<string> {
  const id = randomUUID();
  await sys.db.query(`insert into orders (tenant_id, id, type, status, request, result) values ($1, $2, 'pool.create', 'accepted', '{}'::jsonb, '{}'::jsonb)`, [tenantId, id]);
  return id;
}

describe('a dead-lettered command', () => {
  let sys: TestSystem;
  let adminTenant: string;
  let otherKey: string;
  let otherTenant: string;
  beforeAll(async () => {
    sys = await startTestSystem({ services: ['api-gateway', 'exit-node-manager'] });
    [{ id: adminTenant }] = (await sys.db.query<{ id: string }>("select id from tenants where name = 'admin'")) as [{ id: string }];
    const created = await sys.http('POST', '/v1/tenants', { body: { name: 'other' } });
    otherKey = created.body.apiKey;
    otherTenant = created.body.id;
  });
  afterAll(async () => sys?.close());

  it('fails its order with the reason the consumer rejected it for', async () => {
    const orderId = await insertOrder(sys, adminTenant);
    const js = jetstream(await sys.natsClient());
    await js.publish('pool.cmd.create', JSON.stringify({ orderId, tenantId: adminTenant, poolId: randomUUID(), spec: { name: 'x', kind: 'exit', nodes: { min: 'many' } } }));

    const order = await sys.waitForOrder(orderId, ['failed', 'fulfilled'], { timeoutMs: 20_000 });
    expect(order.status).toBe('failed');
    expect(order.reason).toMatch(/^not carried out: invalid pool\.cmd\.create payload: .*spec\.nodes\.min: must be integer/);
  });

  it("never fails another tenant's order: the dead letter's tenant must own the order", async () => {
    const victim = await insertOrder(sys, adminTenant);
    const js = jetstream(await sys.natsClient());
    // A command naming the admin's order under another tenant, as a forged or confused one would.
    await js.publish('pool.cmd.create', JSON.stringify({ orderId: victim, tenantId: otherTenant, poolId: randomUUID(), spec: { name: 'x' } }));
    // A marker behind it: once its order has failed and the gateway has nothing left to handle,
    // the forged failure was handled too.
    const marker = await insertOrder(sys, adminTenant);
    await js.publish('pool.cmd.create', JSON.stringify({ orderId: marker, tenantId: adminTenant, poolId: randomUUID(), spec: { name: 'y' } }));
    expect((await sys.waitForOrder(marker, ['failed'], { timeoutMs: 20_000 })).status).toBe('failed');
    const jsm = await jetstreamManager(await sys.natsClient());
    await eventually(
      async () => {
        const stream = await jsm.streams.info('EVT', { subjects_filter: 'order.evt.failed' });
        const consumer = await jsm.consumers.info('EVT', 'api-gateway-orders');
        return { failures: stream.state.subjects?.['order.evt.failed'] ?? 0, pending: consumer.num_pending + consumer.num_ack_pending };
      },
      (s) => s.failures >= 3 && s.pending === 0,
      20_000,
      'the forged failure published and handled',
      { intervalMs: 100 },
    );

    const seen = await sys.http('GET', `/v1/orders/${victim}`);
    expect(seen.body.status).toBe('accepted');
    // And the other tenant's key cannot even see it.
    expect((await sys.http('GET', `/v1/orders/${victim}`, { key: otherKey })).status).toBe(404);
  });
});

describe('an order nobody carries out', () => {
  let sys: TestSystem;
  beforeAll(async () => {
    sys = await startTestSystem();
    // No exit-node-manager: the command waits in its stream and nobody reports on the order.
    await sys.start('api-gateway', { ORDER_STALE_AFTER_MS: '2000' });
  });
  afterAll(async () => sys?.close());

  it('is failed by the gateway within the bound, with the reason and a timeline entry', async () => {
    const placed = await sys.http('POST', '/v1/orders', { body: poolOrder('nobody-home') });
    expect(placed.status).toBe(202);

    // 2 s of no change, swept every 0.5 s; the wait allows for a slow machine, not a figure.
    const order = await sys.waitForOrder(placed.body.id, ['failed', 'fulfilled'], { timeoutMs: 20_000 });
    expect(order.status).toBe('failed');
    expect(order.reason).toMatch(/^no progress for 2 s: /);

    const activity = await sys.http('GET', '/v1/activity?kind=order_failed');
    expect(activity.status).toBe(200);
    expect(activity.body.items).toMatchObject([{ kind: 'order_failed', details: { orderId: placed.body.id, type: 'pool.create' } }]);
  });
});

describe('a command that keeps failing', () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await nats.connect();
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  it('fails its order once its deliveries are spent, without the internal error', async () => {
    const manager = createBus(nc, 'exit-node-manager');
    await manager.ensureTopology();
    const orderId = randomUUID();
    const tenantId = randomUUID();
    const failures: Array<Record<string, unknown>> = [];
    const seen = nc.subscribe('order.evt.failed', { callback: (_err, m) => void failures.push(m.json()) });
    let deliveries = 0;
    const down = async () => {
      deliveries++;
      throw new Error('connect ECONNREFUSED 127.0.0.1:5432');
    };
    const handlers = Object.fromEntries(CONSUMERS.exitNodeManagerCommands.subjects.map((s) => [s, down])) as never;
    // The schedule itself is the unit test's (libs/bus/test/backoff.test.ts); here it is short.
    const consumption = manager.consume('exitNodeManagerCommands', handlers, { retryDelayMs: () => 20 });
    await manager.publish('pool.cmd.delete', { orderId, tenantId, poolId: randomUUID() });

    await eventually(
      () => failures.length,
      (n) => n > 0,
      20_000,
      'order.evt.failed',
      { intervalMs: 50 },
    );
    await consumption.stop();
    seen.unsubscribe();
    expect(deliveries).toBe(CONSUMERS.exitNodeManagerCommands.maxDeliver);
    expect(failures).toEqual([{ orderId, tenantId, reason: `not carried out: gave up after ${deliveries} attempts: the service kept failing` }]);
    // The operator's copy keeps the cause.
    const jsm = await jetstreamManager(nc);
    const dead = await jsm.streams.getMessage('DLQ', { last_by_subj: 'dlq.pool.cmd.delete' });
    expect(dead?.header.get(HEADERS.deadLetterReason)).toMatch(/ECONNREFUSED 127\.0\.0\.1:5432/);
  });
});
