import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { HEADERS } from '@switchyard/contracts';
import { eventually, startTestSystem, type TestSystem } from '@switchyard/testkit';

describe('a malformed command', () => {
  let sys: TestSystem;
  beforeAll(async () => {
    sys = await startTestSystem({ services: ['api-gateway', 'exit-node-manager'] });
  });
  afterAll(async () => sys?.close());

  it('goes to the dead-letter subject with the reason, and the consumer keeps working', async () => {
    const nc = await sys.natsClient();
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    const [tenant] = await sys.db.query<{ id: string }>("select id from tenants where name = 'admin'");

    await js.publish('pool.cmd.create', '{"orderId": "not json');
    await js.publish(
      'pool.cmd.create',
      JSON.stringify({ orderId: randomUUID(), tenantId: tenant!.id, poolId: randomUUID(), spec: { name: 'x', kind: 'exit', nodes: { min: 'many' } } }),
    );

    const dead = await eventuallyMessages(jsm, 2);
    expect(dead.map((m) => m.subject)).toEqual(['dlq.pool.cmd.create', 'dlq.pool.cmd.create']);
    expect(dead[0]!.reason).toMatch(/^invalid JSON/);
    expect(dead[0]!.data).toBe('{"orderId": "not json');
    expect(dead[1]!.reason).toMatch(/spec\.nodes\.min: must be integer/);
    expect(dead.every((m) => m.service === 'exit-node-manager')).toBe(true);

    // The same consumer still carries out a good order placed afterwards.
    const placed = await sys.http('POST', '/v1/orders', { body: { type: 'pool.create', pool: { name: 'after-dlq', kind: 'exit', country: 'NL', nodes: { min: 1, max: 1 } } } });
    const order = await sys.waitForOrder(placed.body.id, ['fulfilled', 'failed']);
    expect(order.status).toBe('fulfilled');

    // A bad request on the request/reply path is refused with 400 and dead-lettered too.
    const reply = await nc.request('node.req.list', '{"tenantId":42}', { timeout: 3000, headers: natsHeaders() });
    expect(reply.headers?.get('Nats-Service-Error-Code')).toBe('400');
    expect((await eventuallyMessages(jsm, 3))[2]!.subject).toBe('dlq.node.req.list');
  });
});

async function eventuallyMessages(jsm: Awaited<ReturnType<typeof jetstreamManager>>, count: number) {
  await eventually(
    () => jsm.streams.info('DLQ'),
    (info) => info.state.messages >= count,
    15_000,
    `${count} dead letters`,
    { intervalMs: 100, returnLast: true },
  );
  const out: Array<{ subject: string; reason: string; service: string; data: string }> = [];
  for (let seq = 1; seq <= count; seq++) {
    const m = await jsm.streams.getMessage('DLQ', { seq });
    if (!m) throw new Error(`no dead letter #${seq}`);
    out.push({
      subject: m.subject,
      reason: m.header.get(HEADERS.deadLetterReason),
      service: m.header.get(HEADERS.deadLetterService),
      data: m.string(),
    });
  }
  return out;
}
