import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, freePort, HTTP_APP_IMAGE, HTTP_APP_PORT, httpGet, startScaleToZero, watchSubjects, type ScaleToZero, type SubjectWatch } from '@switchyard/testkit';

// A tenant's ACL policy where a sleeping node's connection is caught: the real activator
// (nftables mode) and the real load balancer in front of the same sleeping app pool. A denied
// connection is let go before anything is woken; an allowed one wakes the node as always.
// Clients connect from loopback addresses of their own to play different sources: the friend
// is allowed, the stranger is not (127.0.0.2 is the activator's own source address).
// The load balancer dials the sleeping node from 127.0.0.1, which the activator is told to
// trust (ACTIVATOR_ACL_TRUSTED_SOURCES): the load balancer judged that connection already.

const FRIEND = '127.0.0.9';
const STRANGER = '127.0.0.8';

describe('ACL policies where a sleeping node is caught', () => {
  let s: ScaleToZero;
  let redis: Redis;
  let wakes: SubjectWatch;
  let nodeId: string;
  let hostPort: number;
  let publicPort: number;

  /** A GET from a source address: the status, or 0 when the connection was closed without an answer. */
  const getFrom = (port: number, from: string) =>
    httpGet(port, '/', 15_000, { localAddress: from }).then(
      (r) => r.status,
      () => 0,
    );
  const denied = async () => Number((await redis.hget(`acl:denied:${s.tenantId}`, 'default')) ?? 0);
  /** The node.cmd.wake and activator.evt.woke of the node since `since`. */
  const wokenSince = (since: number) =>
    [...wakes.seen, ...s.watch.seen].filter((m) => m.at >= since && m.data.nodeId === nodeId && (m.subject === 'node.cmd.wake' || m.subject === 'activator.evt.woke'));

  async function putPolicy(extraSources: string[] = []): Promise<void> {
    const res = await s.sys.http('PUT', '/v1/acl', {
      body: {
        hosts: { 'friend-net': `${FRIEND}/32` },
        tagOwners: { 'tag:web': [] },
        acls: [{ action: 'accept', src: ['friend-net', ...extraSources], dst: [`tag:web:${hostPort}`, `tag:web:${publicPort}`] }],
        tests: [{ src: 'friend-net', accept: [`tag:web:${hostPort}`] }],
      },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
  }

  /** Refused, counted, and nothing woken: the denial is counted before a wake would have been asked for, so once it shows, none was. */
  async function refusedWithoutWake(port: number, since: number): Promise<void> {
    const before = await denied();
    expect(await getFrom(port, STRANGER)).toBe(0);
    await eventually(denied, (n) => n >= before + 1, 10_000, 'the denial counted');
    expect(wokenSince(since)).toEqual([]);
    expect((await s.node(nodeId))?.status).toBe('sleeping');
    expect((await s.catchState()).nodes.find((n) => n.nodeId === nodeId)?.state).toBe('armed');
  }

  beforeAll(async () => {
    s = await startScaleToZero('nftables', { activatorEnv: { ACTIVATOR_ACL_TRUSTED_SOURCES: '127.0.0.1/32' } });
    redis = new Redis(process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379');
    wakes = watchSubjects(s.nc, ['node.cmd.wake']);
    publicPort = await freePort();
    await s.sys.start('load-balancer', { LB_LISTEN_HOST: '127.0.0.1', LB_PROXY_PORT: String(await freePort()), LB_WORKERS: '1' });
    const pool = await s.createAppPool({ name: 'blog', image: HTTP_APP_IMAGE, containerPort: HTTP_APP_PORT, publicPort, tags: ['tag:web'] });
    nodeId = pool.nodeIds[0]!;
    const policy = await s.setSleepPolicy(pool.poolId, { enabled: true, idleWindowSec: 600 });
    expect(policy.status, JSON.stringify(policy.body)).toBe(202);
    hostPort = await s.endpoint(nodeId);
    await putPolicy();
    // The load balancer has the pool and the policy: the friend is served, the stranger not.
    await eventually(
      () => getFrom(publicPort, FRIEND),
      (st) => st === 200,
      20_000,
      'the friend served through the load balancer',
    );
    await eventually(
      () => getFrom(publicPort, STRANGER),
      (st) => st === 0,
      10_000,
      'the stranger refused by the load balancer',
    );
  }, 180_000);

  afterAll(async () => {
    redis?.disconnect();
    await s?.close();
  });

  it('lets a denied caught connection go without waking the node, and wakes it for an allowed one', async () => {
    await s.sleepNow(nodeId);
    const since = Date.now();
    await refusedWithoutWake(hostPort, since);

    expect(await getFrom(hostPort, FRIEND)).toBe(200);
    const woke = await s.watch.next((m) => m.subject === 'activator.evt.woke' && m.data.nodeId === nodeId && m.at >= since, 15_000);
    expect(woke.data).toMatchObject({ trigger: 'connection', heldConnections: 1 });
    expect((await s.waitForNodeStatus(nodeId, 'running', 10_000)).status).toBe('running');
  }, 90_000);

  it('at the load balancer in front of the sleeping pool: a denied client wakes nothing, an allowed one wakes the node through the activator', async () => {
    await s.sleepNow(nodeId);
    const since = Date.now();
    await refusedWithoutWake(publicPort, since);

    expect(await getFrom(publicPort, FRIEND)).toBe(200);
    const woke = await s.watch.next((m) => m.subject === 'activator.evt.woke' && m.data.nodeId === nodeId && m.at >= since, 15_000);
    expect(woke.data).toMatchObject({ trigger: 'connection', heldConnections: 1 });
  }, 90_000);

  it('applies a policy change live: the stranger, now allowed, wakes the node', async () => {
    await s.sleepNow(nodeId);
    await putPolicy([`${STRANGER}/32`]);
    const since = Date.now();
    // The activator heard the change when the stranger's caught connection is held, not let go.
    const status = await eventually(
      () => getFrom(hostPort, STRANGER),
      (st) => st === 200,
      20_000,
      'the stranger served',
      { returnLast: true },
    );
    expect(status).toBe(200);
    const woke = await s.watch.next((m) => m.subject === 'activator.evt.woke' && m.data.nodeId === nodeId && m.at >= since, 15_000);
    expect(woke.data).toMatchObject({ trigger: 'connection' });
  }, 90_000);
});

// Proxy mode: clients use the activator's own public port for the node, and that is the port
// a policy judges.
describe('ACL policies at the activator in proxy mode', () => {
  let s: ScaleToZero;
  let redis: Redis;
  let wakes: SubjectWatch;

  beforeAll(async () => {
    s = await startScaleToZero('proxy');
    redis = new Redis(process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379');
    wakes = watchSubjects(s.nc, ['node.cmd.wake']);
  }, 120_000);

  afterAll(async () => {
    redis?.disconnect();
    await s?.close();
  });

  it("judges the activator's public port: a stranger wakes nothing, the friend wakes the node", async () => {
    const pool = await s.createAppPool({ name: 'api', image: HTTP_APP_IMAGE, containerPort: HTTP_APP_PORT, tags: ['tag:api'] });
    const nodeId = pool.nodeIds[0]!;
    const policy = await s.setSleepPolicy(pool.poolId, { enabled: true, idleWindowSec: 600 });
    expect(policy.status, JSON.stringify(policy.body)).toBe(202);
    const publicPort = await s.endpoint(nodeId);
    const put = await s.sys.http('PUT', '/v1/acl', {
      body: {
        hosts: { 'friend-net': `${FRIEND}/32` },
        tagOwners: { 'tag:api': [] },
        acls: [{ action: 'accept', src: ['friend-net'], dst: [`tag:api:${publicPort}`] }],
      },
    });
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    const getFrom = (from: string) =>
      httpGet(publicPort, '/', 15_000, { localAddress: from }).then(
        (r) => r.status,
        () => 0,
      );
    // Awake: the activator forwards (and judges) every connection in proxy mode.
    await eventually(
      () => getFrom(STRANGER),
      (st) => st === 0,
      10_000,
      'the stranger refused while awake',
    );
    await s.sleepNow(nodeId);
    const since = Date.now();
    const before = Number((await redis.hget(`acl:denied:${s.tenantId}`, 'default')) ?? 0);
    expect(await getFrom(STRANGER)).toBe(0);
    await eventually(
      async () => Number((await redis.hget(`acl:denied:${s.tenantId}`, 'default')) ?? 0),
      (n) => n >= before + 1,
      10_000,
      'the denial counted',
    );
    const woken = [...wakes.seen, ...s.watch.seen].filter(
      (m) => m.at >= since && m.data.nodeId === nodeId && (m.subject === 'node.cmd.wake' || m.subject === 'activator.evt.woke'),
    );
    expect(woken).toEqual([]);
    expect((await s.node(nodeId))?.status).toBe('sleeping');

    expect(await getFrom(FRIEND)).toBe(200);
    const woke = await s.watch.next((m) => m.subject === 'activator.evt.woke' && m.data.nodeId === nodeId && m.at >= since, 15_000);
    expect(woke.data).toMatchObject({ trigger: 'connection', mode: 'proxy', heldConnections: 1 });
  }, 120_000);
});
