import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { startCuttableLink, poolOrder, startTestSystem, type CuttableLink, type TestSystem } from '@switchyard/testkit';

// The order and its command are written in one transaction; the command is published
// later. Kill the gateway after the commit and before the publish: nothing may be lost.
describe('the outbox across an api-gateway crash', () => {
  let sys: TestSystem;
  let natsLink: CuttableLink;

  beforeAll(async () => {
    sys = await startTestSystem();
    natsLink = await startCuttableLink(sys.nats.port);
    await sys.start('exit-node-manager');
  });
  afterAll(async () => {
    await natsLink?.close();
    await sys?.close();
  });

  it('publishes a committed order after the gateway is killed and restarted', async () => {
    // The gateway reaches NATS only through the link, so cutting it holds every publish.
    const gateway = await sys.start('api-gateway', { NATS_URL: `nats://127.0.0.1:${natsLink.port}` });
    await natsLink.cut();

    const placed = await sys.http('POST', '/v1/orders', { body: poolOrder('lisbon', 'PT') });
    expect(placed.status).toBe(202);
    const orderId = placed.body.id as string;
    const [row] = await sys.db.query<{ published_at: Date | null }>("select published_at from outbox where payload->>'orderId' = $1", [orderId]);
    expect(row).toEqual({ published_at: null });

    const killed = await gateway.stop('SIGKILL');
    expect(killed.signal).toBe('SIGKILL');
    const [stillThere] = await sys.db.query<{ status: string; published_at: Date | null }>(
      "select o.status, x.published_at from orders o join outbox x on x.payload->>'orderId' = o.id::text where o.id = $1",
      [orderId],
    );
    expect(stillThere).toEqual({ status: 'accepted', published_at: null });

    await natsLink.restore();
    await sys.start('api-gateway', { NATS_URL: `nats://127.0.0.1:${natsLink.port}` });
    const order = await sys.waitForOrder(orderId, ['fulfilled', 'failed'], { timeoutMs: 45_000 });
    expect(order.status).toBe('fulfilled');
    expect(order.result.nodeIds).toHaveLength(1);

    // Published once: JetStream's de-duplication keeps a repeated publish out of the stream.
    const nc = await sys.natsClient();
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info('CMD_EXIT_NODE_MANAGER');
    expect(info.state.last_seq).toBe(1);
    expect(info.state.messages).toBe(0);
  });
});
