import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, postgresPort, startCuttableLink, poolOrder, startTestSystem, type CuttableLink, type TestSystem } from '@switchyard/testkit';

// Postgres and NATS going away and coming back, seen through the API.
describe('when a dependency is down', () => {
  let sys: TestSystem;
  let pgLink: CuttableLink;
  let natsLink: CuttableLink;

  beforeAll(async () => {
    sys = await startTestSystem();
    pgLink = await startCuttableLink(postgresPort);
    natsLink = await startCuttableLink(sys.nats.port);
    await sys.start('exit-node-manager');
    await sys.start('api-gateway', {
      DATABASE_URL: sys.db.urlVia(pgLink.port, 'api-gateway'),
      NATS_URL: `nats://127.0.0.1:${natsLink.port}`,
    });
  });
  afterAll(async () => {
    await pgLink?.close();
    await natsLink?.close();
    await sys?.close();
  });

  it('answers 503 while Postgres is unreachable and recovers when it returns', async () => {
    expect((await sys.http('GET', '/v1/orders')).status).toBe(200);
    await pgLink.cut();
    const down = await sys.http('POST', '/v1/orders', { body: poolOrder('madrid', 'ES') });
    expect(down.status).toBe(503);
    expect(down.body).toEqual({ error: 'unavailable', message: 'the database is unavailable; retry shortly' });
    expect(down.headers.get('retry-after')).toBe('2');
    expect((await sys.http('GET', '/healthz', { key: null })).body).toMatchObject({ status: 'degraded', database: false });

    await pgLink.restore();
    const up = await eventually(
      () => sys.http('POST', '/v1/orders', { body: poolOrder('madrid', 'ES') }),
      (r) => r.status === 202,
      15_000,
      'an order taken',
      { returnLast: true },
    );
    expect((await sys.waitForOrder(up.body.id, ['fulfilled', 'failed'])).status).toBe('fulfilled');
  });

  it('answers 503 for what needs NATS while it is unreachable, and recovers', async () => {
    expect((await sys.http('GET', '/v1/nodes')).status).toBe(200);
    await natsLink.cut();
    const down = await eventually(
      () => sys.http('GET', '/v1/nodes'),
      (r) => r.status !== 200,
      15_000,
      'nodes refused',
      { returnLast: true },
    );
    expect(down.status).toBe(503);
    expect(down.body.error).toBe('unavailable');
    expect((await sys.http('GET', '/healthz', { key: null })).body).toMatchObject({ status: 'degraded', nats: false });
    // Orders are still taken: they wait in the outbox until NATS is back.
    const placed = await sys.http('POST', '/v1/orders', { body: poolOrder('rome', 'IT') });
    expect(placed.status).toBe(202);

    await natsLink.restore();
    const up = await eventually(
      () => sys.http('GET', '/v1/nodes'),
      (r) => r.status === 200,
      20_000,
      'nodes listed',
      { returnLast: true },
    );
    expect(up.status).toBe(200);
    expect((await sys.http('GET', '/healthz', { key: null })).body).toEqual({ status: 'ok', database: true, nats: true });
    expect((await sys.waitForOrder(placed.body.id, ['fulfilled', 'failed'])).status).toBe('fulfilled');
  });
});
