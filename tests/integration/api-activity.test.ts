import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { createBus, type Bus } from '@switchyard/bus';
import { CONSUMERS, HEADERS, type EventSubject, type Payload } from '@switchyard/contracts';
import { eventually, startTestSystem, type TestSystem } from '@switchyard/testkit';

// The activity timeline: real events on the EVT stream, published the way their producers do,
// read back through GET /v1/activity of a real gateway process.
describe('GET /v1/activity', () => {
  let sys: TestSystem;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let buses: { manager: Bus; sleeper: Bus; activator: Bus };
  let tenantA: string;
  let tenantB: string;
  let keyB: string;

  const poolA = randomUUID();
  const poolB = randomUUID();
  const [n1, n2, n3, n4] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
  const t0 = Date.now() - 3_600_000;
  const at = (second: number) => new Date(t0 + second * 1000).toISOString();
  const policy = { enabled: true, idleWindowSec: 5, minAwake: 0, probeIntervalMs: 30, probeTimeoutMs: 10_000 };

  /** Every event of the story, at its second; `entry` is what the timeline must say (none: no entry). */
  type Step = { second: number; subject: EventSubject; payload: (tenantId: string) => Record<string, unknown>; entry?: [kind: string, message: string, nodeId: string | null] };
  const node = (poolId: string, nodeId: string, second: number) => (tenantId: string) => ({ tenantId, poolId, nodeId, at: at(second) });
  const story: Step[] = [
    { second: 0, subject: 'node.evt.created', payload: (t) => ({ ...node(poolA, n1, 0)(t), name: 'web-0', containerId: 'c1', kind: 'app' }) },
    { second: 1, subject: 'node.evt.started', payload: (t) => ({ ...node(poolA, n1, 1)(t), containerId: 'c1', ports: [], startMs: 180 }), entry: ['started', 'started', n1] },
    { second: 2, subject: 'node.evt.health', payload: (t) => ({ ...node(poolA, n1, 2)(t), containerId: 'c1', status: 'healthy' }) },
    {
      second: 3,
      subject: 'sleep.evt.policy',
      payload: (t) => ({ tenantId: t, poolId: poolA, policy, at: at(3) }),
      entry: ['policy_changed', 'sleep policy: enabled, idle 5 s, min awake 0', null],
    },
    { second: 4, subject: 'node.evt.started', payload: (t) => ({ ...node(poolA, n2, 4)(t), containerId: 'c2', ports: [], startMs: 175 }), entry: ['started', 'started', n2] },
    {
      second: 5,
      subject: 'sleep.evt.slept',
      payload: (t) => ({ ...node(poolA, n1, 5)(t), reason: 'idle: no outbound packets for 5 s', idleSec: 5 }),
      entry: ['slept', 'slept: idle: no outbound packets for 5 s', n1],
    },
    { second: 6, subject: 'node.evt.stopped', payload: (t) => ({ ...node(poolA, n1, 6)(t), containerId: 'c1', reason: 'sleep' }), entry: ['stopped', 'stopped: sleep', n1] },
    {
      second: 7,
      subject: 'activator.evt.woke',
      payload: (t) => ({ ...node(poolA, n1, 7)(t), trigger: 'connection', mode: 'nftables', readyMs: 412, firstByteMs: 431, heldConnections: 3 }),
      entry: ['woke', 'woke in 412 ms (3 held connections)', n1],
    },
    {
      second: 8,
      subject: 'activator.evt.failed',
      payload: (t) => ({ ...node(poolA, n2, 8)(t), reason: 'image switchyard/gone:dev is not on the host', heldConnections: 1 }),
      entry: ['wake_failed', 'wake failed: image switchyard/gone:dev is not on the host', n2],
    },
    {
      second: 9,
      subject: 'node.evt.died',
      payload: (t) => ({ ...node(poolA, n2, 9)(t), containerId: 'c2', exitCode: 137, oomKilled: false }),
      entry: ['died', 'died (exit code 137)', n2],
    },
    { second: 10, subject: 'node.evt.started', payload: (t) => ({ ...node(poolB, n3, 10)(t), containerId: 'c3', ports: [], startMs: 190 }), entry: ['started', 'started', n3] },
    { second: 11, subject: 'node.evt.draining', payload: (t) => ({ ...node(poolB, n3, 11)(t), reason: 'scale down' }), entry: ['draining', 'draining: scale down', n3] },
    { second: 12, subject: 'node.evt.removed', payload: (t) => ({ ...node(poolB, n3, 12)(t), reason: 'scale down' }), entry: ['removed', 'removed: scale down', n3] },
  ];
  /** Tenant A's entries, newest first. */
  const expected = story.filter((s) => s.entry).reverse();

  const busOf = (subject: EventSubject) => (subject.startsWith('sleep.') ? buses.sleeper : subject.startsWith('activator.') ? buses.activator : buses.manager);
  const publish = (subject: EventSubject, payload: Record<string, unknown>, msgId?: string) =>
    busOf(subject).publish(subject, payload as Payload<typeof subject>, msgId ? { msgId } : {});
  const activity = (query = '', key?: string) => sys.http('GET', `/v1/activity${query}`, key ? { key } : {});
  const all = async (query = '', key?: string) => (await activity(`?limit=500${query}`, key)).body.items as any[];
  const summary = (items: any[]) => items.map((i) => [i.kind, i.message, i.nodeId]);

  beforeAll(async () => {
    sys = await startTestSystem({ services: ['api-gateway'] });
    nc = await sys.natsClient();
    jsm = await jetstreamManager(nc);
    buses = { manager: createBus(nc, 'exit-node-manager'), sleeper: createBus(nc, 'sleep-controller'), activator: createBus(nc, 'socket-activator') };
    tenantA = (await sys.db.query<{ id: string }>("select id from tenants where name = 'admin'"))[0]!.id;
    const created = await sys.http('POST', '/v1/tenants', { body: { name: 'other' } });
    tenantB = created.body.id;
    keyB = created.body.apiKey;

    // Domains out of time order: the activator's first, the sleep controller's last. The
    // timeline is ordered by when things happened, not by when the gateway heard of them.
    const byDomain = [...story].sort((a, b) => rank(a.subject) - rank(b.subject));
    for (const step of byDomain) await publish(step.subject, step.payload(tenantA));
    await publish('node.evt.started', { ...node(poolB, n4, 6)(tenantB), containerId: 'c4', ports: [], startMs: 200 });
    await eventually(
      () => all(),
      (items) => items.length === expected.length,
      15_000,
      'every entry recorded',
    );
  }, 60_000);
  afterAll(async () => {
    await sys?.close();
  });

  it('records each event once, in words, newest first by when it happened, for its tenant only', async () => {
    const res = await activity('?limit=500');
    expect(res.status).toBe(200);
    expect(res.body.next).toBeNull();
    expect(summary(res.body.items)).toEqual(expected.map((s) => s.entry));
    expect(res.body.items.map((i: any) => i.at)).toEqual(expected.map((s) => at(s.second)));
    for (const item of res.body.items) {
      expect(Object.keys(item).sort()).toEqual(['at', 'details', 'id', 'kind', 'message', 'nodeId', 'poolId', 'tenantId']);
      expect(item.tenantId).toBe(tenantA);
      expect(item.id).toMatch(/^\d+$/);
    }
    const woke = res.body.items.find((i: any) => i.kind === 'woke');
    expect(woke).toMatchObject({ poolId: poolA, nodeId: n1, details: { trigger: 'connection', mode: 'nftables', readyMs: 412, firstByteMs: 431, heldConnections: 3 } });
    expect(res.body.items.find((i: any) => i.kind === 'policy_changed')).toMatchObject({ poolId: poolA, nodeId: null, details: policy });

    const other = await activity('', keyB);
    expect(summary(other.body.items)).toEqual([['started', 'started', n4]]);
    expect(other.body.items[0].tenantId).toBe(tenantB);
    expect((await sys.http('GET', '/v1/activity', { key: null })).status).toBe(401);
  });

  it('filters by pool, node and kind, alone and together', async () => {
    const ofPool = (poolId: string) => expected.filter((s) => (s.payload(tenantA) as { poolId: string }).poolId === poolId).map((s) => s.entry);
    expect(summary(await all(`&poolId=${poolA}`))).toEqual(ofPool(poolA));
    expect(summary(await all(`&poolId=${poolB}`))).toEqual(ofPool(poolB));
    expect(summary(await all(`&nodeId=${n1}`))).toEqual([
      ['woke', 'woke in 412 ms (3 held connections)', n1],
      ['stopped', 'stopped: sleep', n1],
      ['slept', 'slept: idle: no outbound packets for 5 s', n1],
      ['started', 'started', n1],
    ]);
    expect(summary(await all('&kind=woke'))).toEqual([['woke', 'woke in 412 ms (3 held connections)', n1]]);
    expect(summary(await all('&kind=slept,woke'))).toEqual([
      ['woke', 'woke in 412 ms (3 held connections)', n1],
      ['slept', 'slept: idle: no outbound packets for 5 s', n1],
    ]);
    expect(summary(await all(`&kind=started&poolId=${poolA}`))).toEqual([
      ['started', 'started', n2],
      ['started', 'started', n1],
    ]);
    expect(summary(await all(`&kind=removed&nodeId=${n3}&poolId=${poolB}`))).toEqual([['removed', 'removed: scale down', n3]]);
    expect(await all(`&kind=removed&poolId=${poolA}`)).toEqual([]);
    // Another tenant's node and pool are as empty as unknown ones.
    expect(await all(`&nodeId=${n4}`)).toEqual([]);
    expect(await all(`&nodeId=${n1}`, keyB)).toEqual([]);
  });

  it('pages with `before` through the whole timeline, and through a filtered one', async () => {
    const walk = async (filter: string, limit: number) => {
      const pages: any[][] = [];
      let before = '';
      for (let i = 0; i < 20; i++) {
        const res = await activity(`?limit=${limit}${filter}${before}`);
        expect(res.status).toBe(200);
        pages.push(res.body.items);
        if (res.body.next === null) return pages;
        expect(res.body.next).toBe(res.body.items[res.body.items.length - 1].id);
        before = `&before=${res.body.next}`;
      }
      throw new Error('more than 20 pages');
    };
    const pages = await walk('', 4);
    expect(pages.map((p) => p.length)).toEqual([4, 4, 3]);
    expect(summary(pages.flat())).toEqual(expected.map((s) => s.entry));
    const ofN1 = await walk(`&nodeId=${n1}`, 3);
    expect(ofN1.map((p) => p.length)).toEqual([3, 1]);
    expect(summary(ofN1.flat())).toEqual(summary(await all(`&nodeId=${n1}`)));
    // The default page is 50; an exact fit has no next page.
    expect((await activity(`?limit=${expected.length}`)).body.next).toBeNull();
    expect((await activity()).body.items).toHaveLength(expected.length);
  });

  it('answers a bad filter with 400 naming the field', async () => {
    const someId = (await all())[0].id;
    const otherTenantsId = (await all('', keyB))[0].id;
    const cases: Array<[string, string, RegExp]> = [
      [
        '?kind=nap',
        'query.kind',
        /unknown kind "nap" \(one of slept, woke, wake_failed, policy_changed, started, stopped, died, removed, draining, order_failed, tunnel_opened, tunnel_closed, path_up, path_down, path_switched, keys_rotated, key_expired\)/,
      ],
      ['?kind=slept,nap,yawn', 'query.kind', /unknown kind "nap", "yawn"/],
      ['?poolId=pool-a', 'query.poolId', /uuid/],
      ['?nodeId=42', 'query.nodeId', /uuid/],
      ['?limit=0', 'query.limit', />= 1/],
      ['?limit=501', 'query.limit', /<= 500/],
      ['?limit=many', 'query.limit', /integer/],
      ['?before=abc', 'query.before', /pattern/],
      ['?before=999999999', 'query.before', /no activity entry 999999999/],
      [`?before=${otherTenantsId}`, 'query.before', new RegExp(`no activity entry ${otherTenantsId}`)],
      ['?colour=red', 'query.colour', /unknown field/],
    ];
    for (const [query, field, message] of cases) {
      const res = await activity(query);
      expect(res.status, query).toBe(400);
      expect(res.body.error, query).toBe('bad_request');
      expect(res.body.issues, query).toEqual([{ field, message: expect.stringMatching(message) }]);
    }
    expect((await activity(`?before=${someId}`)).status).toBe(200);
  });

  it('makes one entry of an event however often it arrives: the same Nats-Msg-Id, a producer sending it again, a consumer replaying the stream', async () => {
    const died = { ...node(poolA, n2, 20)(tenantA), containerId: 'c2', exitCode: 1, oomKilled: false };
    await publish('node.evt.died', died, 'died-20');
    await publish('node.evt.died', died, 'died-20');
    await publish('node.evt.died', died, 'died-20-resent');
    const after = await eventually(
      () => all(`&kind=died`),
      (items) => items.length === 2,
      10_000,
      'the new death recorded',
    );
    expect(summary(after)).toEqual([
      ['died', 'died (exit code 1)', n2],
      ['died', 'died (exit code 137)', n2],
    ]);
    const count = (await all()).length;
    expect(count).toBe(expected.length + 1);

    // A consumer recreated from the stream's start redelivers every event the gateway has had.
    const gateway = sys.processes('api-gateway')[0]!;
    await gateway.stop('SIGTERM');
    const durables = [CONSUMERS.apiGatewayActivitySleep, CONSUMERS.apiGatewayActivityActivator, CONSUMERS.apiGatewayActivityNodes];
    for (const c of durables) await jsm.consumers.delete(c.stream, c.durable);
    await sys.start('api-gateway');
    // The gateway creates its consumers before it is ready, so nothing pending means all replayed.
    const replayed = await eventually(
      () => Promise.all(durables.map((c) => jsm.consumers.info(c.stream, c.durable))),
      (infos) => infos.every((i) => i.num_pending === 0 && i.num_ack_pending === 0),
      15_000,
      'every stored event delivered again and acknowledged',
    );
    expect(replayed.reduce((sum, i) => sum + i.delivered.stream_seq, 0)).toBeGreaterThan(0);
    expect(replayed.map((i) => i.delivered.consumer_seq).reduce((a, b) => a + b)).toBe((await jsm.streams.info('EVT')).state.messages);
    expect((await all()).length).toBe(count);
  });

  it('dead-letters a malformed event and keeps recording the next ones', async () => {
    const js = jetstream(nc);
    await js.publish('node.evt.removed', 'not json {');
    await js.publish('node.evt.removed', JSON.stringify({ ...node(poolB, n3, 30)(tenantA), reason: 42 }));
    await publish('node.evt.removed', { ...node(poolB, n3, 31)(tenantA), reason: 'after the bad ones' });
    await eventually(
      () => all('&kind=removed'),
      (items) => items[0]?.message === 'removed: after the bad ones',
      10_000,
      'the good event after the bad ones',
    );

    const dead = await eventually(
      () => deadLetters(jsm),
      (d) => d.length === 2,
      10_000,
      'two dead letters',
    );
    expect(dead.map((d) => [d.subject, d.service])).toEqual([
      ['dlq.node.evt.removed', 'api-gateway'],
      ['dlq.node.evt.removed', 'api-gateway'],
    ]);
    expect(dead[0]!.reason).toMatch(/^invalid JSON/);
    expect(dead[1]!.reason).toMatch(/reason: must be string/);
    expect(sys.processes('api-gateway')).toHaveLength(1);
    expect((await sys.http('GET', '/healthz', { key: null })).status).toBe(200);
  });
});

function rank(subject: string): number {
  return subject.startsWith('activator.') ? 0 : subject.startsWith('node.') ? 1 : 2;
}

async function deadLetters(jsm: JetStreamManager) {
  const { messages, first_seq: first } = (await jsm.streams.info('DLQ')).state;
  const out: Array<{ subject: string; reason: string; service: string }> = [];
  for (let seq = first; seq < first + messages; seq++) {
    const m = await jsm.streams.getMessage('DLQ', { seq });
    if (m) out.push({ subject: m.subject, reason: m.header.get(HEADERS.deadLetterReason), service: m.header.get(HEADERS.deadLetterService) });
  }
  return out;
}
