import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { Svcm } from '@nats-io/services';
import { createBus } from '@switchyard/bus';
import { poolOrder, startTestSystem, type HttpResult, type TestSystem } from '@switchyard/testkit';

// Idempotency-Key against the real gateway process and Postgres. A request is held in flight
// for real: a member's pool order waits in the pool guard for `pool.req.snapshot`, which this
// test answers in place of exit-node-manager and can keep waiting.
describe('Idempotency-Key', () => {
  let sys: TestSystem;
  let held: { arrived: () => void; release: Promise<void> } | undefined;

  /** The next snapshot request is answered only when `release` is called. */
  function holdNextSnapshot() {
    let arrived!: () => void;
    let release!: () => void;
    const arrival = new Promise<void>((r) => (arrived = r));
    held = { arrived, release: new Promise<void>((r) => (release = r)) };
    return { arrival, release };
  }

  // Three pools a tenant: enough for every test here, and a quota the attack below runs into.
  const gatewayEnv = { SERVICE_REQUEST_TIMEOUT_MS: '30000', TENANT_MAX_POOLS: '3' };

  beforeAll(async () => {
    sys = await startTestSystem();
    await sys.start('api-gateway', gatewayEnv);
    const nc = await sys.natsClient();
    const service = await new Svcm(nc).add({ name: 'exit-node-manager', version: '0.0.0' });
    createBus(nc, 'exit-node-manager').serve(service, 'pool.req.snapshot', async () => {
      const hold = held;
      held = undefined;
      if (hold) {
        hold.arrived();
        await hold.release;
      }
      return { pools: [], nodes: [] };
    });
  }, 120_000);
  afterAll(async () => {
    await sys?.close();
  });

  const newTenant = async () => {
    const res = await sys.http('POST', '/v1/tenants', { body: { name: `t-${randomBytes(4).toString('hex')}` } });
    expect(res.status).toBe(201);
    return { id: res.body.id as string, key: res.body.apiKey as string };
  };
  const uniqueKey = () => `key-${randomBytes(6).toString('hex')}`;
  const order = (key: string, idem: string, body: unknown = poolOrder('osaka')) => sys.http('POST', '/v1/orders', { key, body, headers: { 'idempotency-key': idem } });
  const ordersOf = async (tenantId: string) => (await sys.db.query<{ id: string }>('select id from orders where tenant_id = $1', [tenantId])).map((r) => r.id);
  const recordOf = async (tenantId: string, idem: string) =>
    (await sys.db.query<Record<string, any>>('select * from idempotency_keys where tenant_id = $1 and key = $2', [tenantId, idem]))[0];
  const expectReplayOf = (again: HttpResult, first: HttpResult) => {
    expect(again.status).toBe(first.status);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body).toEqual(first.body);
    expect(again.headers.get('location')).toBe(first.headers.get('location'));
  };

  it('answers 409 to the same key while its first request is in flight, then replays the first answer', async () => {
    const t = await newTenant();
    const idem = uniqueKey();
    const { arrival, release } = holdNextSnapshot();
    const first = order(t.key, idem);
    await arrival;
    // The first request is inside the pool guard, holding the key.
    expect((await recordOf(t.id, idem))?.state).toBe('in_flight');
    const second = await order(t.key, idem);
    expect(second.status).toBe(409);
    expect(second.headers.get('retry-after')).toBe('1');
    expect(second.body).toMatchObject({ error: 'idempotency_key_in_flight', issues: [{ field: 'headers.idempotency-key', message: 'a request with this key is in progress' }] });
    expect(await ordersOf(t.id)).toEqual([]);
    release();
    const done = await first;
    expect(done.status).toBe(202);
    expect(done.headers.get('idempotent-replayed')).toBeNull();
    expect(await ordersOf(t.id)).toEqual([done.body.id]);

    const again = await order(t.key, idem);
    expectReplayOf(again, done);
    expect(await ordersOf(t.id)).toEqual([done.body.id]);
    const record = await recordOf(t.id, idem);
    expect(record).toMatchObject({ state: 'done', response_status: 202, response_sealed: false });
    expect(record!.fingerprint).toMatch(/^hmac:[0-9a-f]{64}$/);
  });

  it('refuses the key with another body or another route: 422 naming the header, nothing done', async () => {
    const t = await newTenant();
    const idem = uniqueKey();
    const first = await order(t.key, idem, poolOrder('nagoya'));
    expect(first.status).toBe(202);
    for (const other of [
      () => order(t.key, idem, poolOrder('kyoto')),
      () => sys.http('POST', '/v1/proxy-users', { key: t.key, body: { name: 'alice' }, headers: { 'idempotency-key': idem } }),
    ]) {
      const res = await other();
      expect(res.status).toBe(422);
      expect(res.body).toEqual({
        error: 'idempotency_key_reused',
        message: `Idempotency-Key "${idem}" was already used for a different request`,
        issues: [{ field: 'headers.idempotency-key', message: 'already used for a different request' }],
      });
    }
    expect(await ordersOf(t.id)).toEqual([first.body.id]);
    expect((await sys.http('GET', '/v1/proxy-users', { key: t.key })).body.users).toEqual([]);
    // The first answer is still the one replayed.
    expectReplayOf(await order(t.key, idem, poolOrder('nagoya')), first);
  });

  it("replays a proxy user's creation with its password, which is kept only sealed", async () => {
    const t = await newTenant();
    const idem = uniqueKey();
    const post = () => sys.http('POST', '/v1/proxy-users', { key: t.key, body: { name: 'bob' }, headers: { 'idempotency-key': idem } });
    const first = await post();
    expect(first.status).toBe(201);
    expect(first.body.password).toMatch(/^pu_/);
    expectReplayOf(await post(), first);
    expect((await sys.http('GET', '/v1/proxy-users', { key: t.key })).body.users).toHaveLength(1);
    const record = await recordOf(t.id, idem);
    expect(record).toMatchObject({ state: 'done', response_status: 201, response_sealed: true });
    expect(record!.response_body).toMatch(/^v1:/);
    expect(JSON.stringify(record)).not.toContain(first.body.password);
    expect(JSON.stringify(record)).not.toContain('bob');
  });

  it('frees the key of a refused request: the retry runs again', async () => {
    const t = await newTenant();
    expect((await sys.http('POST', '/v1/proxy-users', { key: t.key, body: { name: 'carol' } })).status).toBe(201);
    const idem = uniqueKey();
    const post = (name: string) => sys.http('POST', '/v1/proxy-users', { key: t.key, body: { name }, headers: { 'idempotency-key': idem } });
    expect((await post('carol')).status).toBe(409);
    expect(await recordOf(t.id, idem)).toBeUndefined();
    // Revoked, the name is free; the same key and request now succeed instead of replaying the refusal.
    const [carol] = (await sys.http('GET', '/v1/proxy-users', { key: t.key })).body.users;
    expect((await sys.http('DELETE', `/v1/proxy-users/${carol.id}`, { key: t.key })).status).toBe(204);
    const retried = await post('carol');
    expect(retried.status).toBe(201);
    expect(retried.headers.get('idempotent-replayed')).toBeNull();
  });

  it("never answers one tenant with another's response, nor blocks it with another's request in flight", async () => {
    const [a, b] = [await newTenant(), await newTenant()];
    const idem = uniqueKey();
    const { arrival, release } = holdNextSnapshot();
    const aFirst = order(a.key, idem);
    await arrival;
    // A's request holds the key in A's tenant only: B, the same key and body, proceeds.
    const bFirst = await order(b.key, idem);
    expect(bFirst.status).toBe(202);
    expect(bFirst.headers.get('idempotent-replayed')).toBeNull();
    release();
    const aDone = await aFirst;
    expect(aDone.status).toBe(202);
    expect(bFirst.body.id).not.toBe(aDone.body.id);

    // B replaying the key gets its own order, never A's.
    const bAgain = await order(b.key, idem);
    expectReplayOf(bAgain, bFirst);
    expect(bAgain.body.id).not.toBe(aDone.body.id);
    // A proxy user made by A under a key: B with that key and body makes its own, sees no password of A's.
    const puKey = uniqueKey();
    const mk = (key: string) => sys.http('POST', '/v1/proxy-users', { key, body: { name: 'dave' }, headers: { 'idempotency-key': puKey } });
    const aUser = await mk(a.key);
    const bUser = await mk(b.key);
    expect(bUser.status).toBe(201);
    expect(bUser.headers.get('idempotent-replayed')).toBeNull();
    expect(bUser.body.id).not.toBe(aUser.body.id);
    expect(bUser.body.password).not.toBe(aUser.body.password);
    expect(await ordersOf(b.id)).toEqual([bFirst.body.id]);
    expect(await ordersOf(a.id)).toEqual([aDone.body.id]);
  });

  it('forgets a key after 24 h: then it is a new request, whatever its body', async () => {
    const t = await newTenant();
    const idem = uniqueKey();
    const first = await order(t.key, idem, poolOrder('sapporo'));
    expect(first.status).toBe(202);
    const age = async (interval: string) => {
      await sys.db.query(`update idempotency_keys set created_at = now() - interval '${interval}', locked_at = now() - interval '${interval}' where tenant_id = $1`, [t.id]);
      await sys.db.query(`update orders set created_at = now() - interval '${interval}' where tenant_id = $1`, [t.id]);
    };
    // Just short of 24 h the key is still taken.
    await age('23 hours 59 minutes');
    expect((await order(t.key, idem, poolOrder('sendai'))).status).toBe(422);
    expectReplayOf(await order(t.key, idem, poolOrder('sapporo')), first);

    await age('24 hours 1 minute');
    const fresh = await order(t.key, idem, poolOrder('sendai'));
    expect(fresh.status).toBe(202);
    expect(fresh.headers.get('idempotent-replayed')).toBeNull();
    expect(fresh.body.id).not.toBe(first.body.id);
    expect((await ordersOf(t.id)).sort()).toEqual([first.body.id, fresh.body.id].sort());
    expectReplayOf(await order(t.key, idem, poolOrder('sendai')), fresh);
    // Even the same body as 24 h ago is a new order now.
    await age('25 hours');
    const third = await order(t.key, idem, poolOrder('sendai'));
    expect(third.status).toBe(202);
    expect(third.headers.get('idempotent-replayed')).toBeNull();
    expect(await ordersOf(t.id)).toHaveLength(3);
  });

  it("does not let an expired key skip the pool quota (a member's retry is exempt only while the key lives)", async () => {
    const t = await newTenant();
    const idem = uniqueKey();
    for (const [i, k] of [uniqueKey(), uniqueKey(), idem].entries()) expect((await order(t.key, k, poolOrder(`p${i}`))).status).toBe(202);
    const refused = await order(t.key, uniqueKey(), poolOrder('p3'));
    expect(refused.status).toBe(403);
    // A day later the key is free: a new order under it is counted like any other.
    await sys.db.query(`update idempotency_keys set created_at = now() - interval '25 hours' where tenant_id = $1`, [t.id]);
    await sys.db.query(`update orders set created_at = now() - interval '25 hours' where tenant_id = $1`, [t.id]);
    const attack = await order(t.key, idem, poolOrder('p4'));
    expect(attack.status).toBe(403);
    expect(attack.body.issues).toEqual([expect.objectContaining({ field: 'pool' })]);
    expect(await ordersOf(t.id)).toHaveLength(3);
  });

  it('still returns the stored order when the key record is lost (the order row keeps its key)', async () => {
    const t = await newTenant();
    const idem = uniqueKey();
    const first = await order(t.key, idem);
    expect(first.status).toBe(202);
    await sys.db.query('delete from idempotency_keys where tenant_id = $1', [t.id]);
    expectReplayOf(await order(t.key, idem), first);
    expect(await ordersOf(t.id)).toEqual([first.body.id]);
    expect((await order(t.key, idem, poolOrder('kobe'))).status).toBe(422);
  });

  it('takes over the key of a request that crashed in flight, once its claim is stale', async () => {
    const t = await newTenant();
    const idem = uniqueKey();
    const { arrival, release } = holdNextSnapshot();
    const lost = order(t.key, idem).catch((err: Error) => err);
    await arrival;
    // The gateway dies with the request in flight: nothing finishes or frees its claim.
    const [gateway] = sys.processes('api-gateway');
    await gateway!.stop('SIGKILL');
    release();
    expect(await lost).toBeInstanceOf(Error);
    await sys.start('api-gateway', gatewayEnv);
    expect((await recordOf(t.id, idem))?.state).toBe('in_flight');

    // A fresh claim is honoured: the holder might only be slow.
    expect((await order(t.key, idem)).status).toBe(409);
    // Older than IDEMPOTENCY_IN_FLIGHT_MS (60 s by default), it is taken over by the same request only.
    await sys.db.query(`update idempotency_keys set locked_at = now() - interval '61 seconds' where tenant_id = $1`, [t.id]);
    expect((await order(t.key, idem, poolOrder('kobe'))).status).toBe(422);
    const taken = await order(t.key, idem);
    expect(taken.status).toBe(202);
    expect(taken.headers.get('idempotent-replayed')).toBeNull();
    expect(await ordersOf(t.id)).toEqual([taken.body.id]);
    expectReplayOf(await order(t.key, idem), taken);
  });
});
