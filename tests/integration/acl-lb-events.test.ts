import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { HEADERS, type AclPolicyView } from '@switchyard/contracts';
import {
  createTestRedisUsers,
  type TestRedisUsers,
  eventually,
  freePort,
  startNatsServer,
  startReady,
  startRoutingPeer,
  startTaggedBackends,
  type NatsServer,
  type RoutingPeer,
  type ServiceProcess,
  type TaggedBackends,
} from '@switchyard/testkit';
import { aNodeServing, aPoolView } from '@switchyard/testkit/fixtures';

// How the load balancer's workers follow the tenants' ACL policies, with the gateway's part
// played by the test as a NATS peer: it answers acl.req.snapshot from `peer.state.policies`
// and publishes acl.evt.changed. No Docker: two tenants' app pools on tagged loopback
// backends, reached from loopback addresses of the test's choosing (127.0.0.x) as sources.

const WORKERS = 2;
const FRIEND = '127.0.0.21';
const STRANGER = '127.0.0.22';

describe('the load balancer following ACL policies', () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let peer: RoutingPeer;
  let backends: TaggedBackends;
  let lb: ServiceProcess;
  let redis: Redis;
  let redisUsers: TestRedisUsers;
  let portA: number;
  let portB: number;
  const tenantA = randomUUID();
  const tenantB = randomUUID();

  /** Connections refused so far, per app port: each one a denial the load balancer counts. */
  const refused = new Map<number, number>();
  /** What the app port answered a connection from `from`: the backend's tagged echo, or '' when closed without a byte. */
  const answerFrom = async (port: number, from: string) => {
    const answer = await new Promise<string>((resolve, reject) => {
      const s = connect({ port, host: '127.0.0.1', localAddress: from });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error(`neither an answer nor a close on port ${port} within 5 s`));
      }, 5_000);
      s.on('error', () => undefined);
      s.once('connect', () => s.write('hi'));
      s.once('data', (d) => {
        clearTimeout(timer);
        s.destroy();
        resolve(d.toString());
      });
      s.once('close', () => {
        clearTimeout(timer);
        resolve('');
      });
    });
    if (answer === '') refused.set(port, (refused.get(port) ?? 0) + 1);
    return answer;
  };
  async function everyWorker(port: number, from: string): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < 2 * WORKERS; i++) out.push(await answerFrom(port, from));
    return out;
  }
  const all = (v: string) => Array(2 * WORKERS).fill(v);

  /** A's policy at `version`: `sources` may reach tag:web on A's port. */
  const policyOfA = (version: number, sources: string[]): AclPolicyView => ({
    tenantId: tenantA,
    version,
    policy: {
      tagOwners: { 'tag:web': [] },
      acls: [{ action: 'accept', src: sources, dst: [`tag:web:${portA}`] }],
    },
  });

  /** What the gateway does on a change: the snapshot says it, and the event announces it. */
  async function change(view: AclPolicyView, { announce = true } = {}): Promise<void> {
    peer.state.policies.splice(0, peer.state.policies.length, ...peer.state.policies.filter((p) => p.tenantId !== view.tenantId), view);
    if (announce) {
      nc.publish('acl.evt.changed', JSON.stringify(view));
      await nc.flush();
    }
  }

  beforeAll(async () => {
    redisUsers = await createTestRedisUsers(`sy_acle_${randomUUID().slice(0, 8)}`);
    nats = await startNatsServer();
    nc = await nats.connect();
    peer = startRoutingPeer(nc);
    backends = await startTaggedBackends(['a', 'b']);
    portA = await freePort();
    portB = await freePort();
    // The same tag in both tenants: a policy names tags of its own tenant's pools only.
    const poolA = aPoolView({ name: 'web', kind: 'app', image: 'none', publicPort: portA, ports: [{ name: 'tcp', containerPort: 1 }], tags: ['tag:web'] }, { tenantId: tenantA });
    const poolB = aPoolView({ name: 'web', kind: 'app', image: 'none', publicPort: portB, ports: [{ name: 'tcp', containerPort: 1 }], tags: ['tag:web'] }, { tenantId: tenantB });
    peer.state.pools.push(poolA, poolB);
    peer.state.nodes.push(aNodeServing(poolA, backends.ports[0]!), aNodeServing(poolB, backends.ports[1]!));
    await change(policyOfA(1, [`${FRIEND}/32`]), { announce: false });
    redis = new Redis(process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379');
    lb = await startReady('load-balancer', {
      NATS_URL: nats.url,
      ...nats.identityEnv('load-balancer'),
      // Its own Redis user (lb:*, acl:*), as in a deployment.
      REDIS_URL: redisUsers.urlFor('load-balancer'),
      LB_PROXY_PORT: String(await freePort()),
      LB_WORKERS: String(WORKERS),
      LB_ACCEPT: 'primary',
      LB_REBUILD_INTERVAL_MS: '1000',
      SHUTDOWN_TIMEOUT_MS: '5000',
    });
  });

  afterAll(async () => {
    await lb?.stop('SIGTERM');
    peer?.stop();
    await nc?.close();
    await backends?.close();
    redis?.disconnect();
    await redisUsers?.delete();
    await nats?.stop();
  });

  it('enforces the policy read at start in every worker; the other tenant is untouched', async () => {
    expect(await everyWorker(portA, FRIEND)).toEqual(all('a:hi'));
    expect(await everyWorker(portA, STRANGER)).toEqual(all(''));
    expect(await everyWorker(portB, STRANGER)).toEqual(all('b:hi'));
  });

  it('applies a newer version from the event at once, and ignores an older one', async () => {
    await change(policyOfA(3, [`${STRANGER}/32`]));
    await eventually(
      () => everyWorker(portA, STRANGER),
      (r) => r.every((x) => x === 'a:hi'),
      5_000,
      'the stranger let in',
    );
    expect(await everyWorker(portA, FRIEND)).toEqual(all(''));
    // An older version, as a late or replayed event, then a change of B's: messages of one
    // connection arrive in order, so once every worker applied B's, each has handled the older one.
    nc.publish('acl.evt.changed', JSON.stringify(policyOfA(2, [`${FRIEND}/32`])));
    await change({ tenantId: tenantB, version: 1, policy: { tagOwners: { 'tag:web': [] }, acls: [] } });
    await eventually(
      () => everyWorker(portB, STRANGER),
      (r) => r.every((x) => x === ''),
      5_000,
      "B's policy applied",
    );
    expect(await everyWorker(portA, FRIEND)).toEqual(all(''));
    expect(await everyWorker(portA, STRANGER)).toEqual(all('a:hi'));
    await change({ tenantId: tenantB, version: 2, policy: null });
    await eventually(
      () => everyWorker(portB, STRANGER),
      (r) => r.every((x) => x === 'b:hi'),
      5_000,
      "B's policy deleted",
    );
  });

  it('repairs a missed event from the snapshot', async () => {
    await change(policyOfA(4, [`${FRIEND}/32`]), { announce: false });
    await eventually(
      () => everyWorker(portA, FRIEND),
      (r) => r.every((x) => x === 'a:hi'),
      10_000,
      'the friend let in after a rebuild',
    );
    expect(await everyWorker(portA, STRANGER)).toEqual(all(''));
  });

  it('dead-letters a policy that does not compile, once per service, and keeps the last good one', async () => {
    const dead: Array<{ reason: string; service: string }> = [];
    const sub = nc.subscribe('dlq.acl.evt.changed', {
      callback: (_e, m) => void dead.push({ reason: m.headers?.get(HEADERS.deadLetterReason) ?? '', service: m.headers?.get(HEADERS.deadLetterService) ?? '' }),
    });
    try {
      const bad = { tenantId: tenantA, version: 5, policy: { acls: [{ action: 'accept', src: ['group:ghost'], dst: ['tag:web:*'] }] } };
      nc.publish('acl.evt.changed', JSON.stringify(bad));
      await nc.flush();
      await eventually(
        () => dead.length,
        (n) => n >= 1,
        5_000,
        'the dead letter',
      );
      expect(dead[0]).toMatchObject({ service: 'load-balancer' });
      expect(dead[0]!.reason).toMatch(/does not compile.*group:ghost/);
      expect(await everyWorker(portA, FRIEND)).toEqual(all('a:hi'));
      expect(await everyWorker(portA, STRANGER)).toEqual(all(''));
      // Both workers heard it; the message id made it one dead letter in the stream.
      const info = await nc.request('$JS.API.STREAM.INFO.DLQ', JSON.stringify({ subjects_filter: 'dlq.acl.evt.changed' }), { timeout: 2000 });
      expect(info.json<{ state: { subjects?: Record<string, number> } }>().state.subjects).toEqual({ 'dlq.acl.evt.changed': 1 });
    } finally {
      sub.unsubscribe();
    }
  });

  it('counts every denial in Redis per tenant and rule, batched', async () => {
    for (let i = 0; i < 12; i++) expect(await answerFrom(portA, STRANGER)).toBe('');
    // Every connection refused in this file so far, and no other: the policies here have accept rules only.
    const counted = async () => [await redis.hgetall(`acl:denied:${tenantA}`), await redis.hgetall(`acl:denied:${tenantB}`)];
    const expected = [{ default: String(refused.get(portA)) }, { default: String(refused.get(portB)) }];
    const got = await eventually(counted, (c) => JSON.stringify(c) === JSON.stringify(expected), 5_000, 'the denials in Redis', { returnLast: true });
    expect(got).toEqual(expected);
  });

  it('opens the pool again when the policy is deleted', async () => {
    await change({ tenantId: tenantA, version: 6, policy: null });
    await eventually(
      () => everyWorker(portA, STRANGER),
      (r) => r.every((x) => x === 'a:hi'),
      5_000,
      'the pool open again',
    );
  });
});
