import { describe, expect, it } from 'vitest';
import { Rejection } from '@switchyard/bus';
import type { Payload, PoolSpec, ReplyOf, SleepPolicy } from '@switchyard/contracts';
import { createHandlers } from '../src/handlers.js';
import { IdleDetector } from '../src/idle-detector.js';
import { poolKey, type PolicyStore, type StoredPolicy } from '../src/policy-store.js';
import { sleepIdleNodes } from '../src/sleeper.js';

const tenantId = '0c0ffee0-1234-4abc-8def-0123456789ab';
const poolId = '11111111-2222-4333-8444-555555555555';
const nodeId = '99999999-8888-4777-8666-000000000001';
const orderId = '77777777-6666-4555-8444-333333333333';
const ports = [{ name: 'http', containerPort: 8000, hostIp: '127.0.0.1', hostPort: 41000 }];
const spec: PoolSpec = { name: 'app', kind: 'app', image: 'x', nodes: { min: 1, max: 1 }, ports: [{ name: 'http', containerPort: 8000 }] };
const policy: SleepPolicy = { enabled: true, idleWindowSec: 2, minAwake: 0, probeIntervalMs: 20, probeTimeoutMs: 5000 };

function memoryPolicies(): PolicyStore {
  const rows = new Map<string, StoredPolicy>();
  return {
    load: async () => undefined,
    get: (t, p) => rows.get(poolKey(t, p))?.policy,
    shortestWindowSec: () => undefined,
    async set(t, p, policy) {
      const s = { tenantId: t, poolId: p, policy, updatedAt: new Date() };
      rows.set(poolKey(t, p), s);
      return s;
    },
    async seed(t, p, policy) {
      if (rows.has(poolKey(t, p))) return undefined;
      return this.set(t, p, policy);
    },
    remove: async (t, p) => void rows.delete(poolKey(t, p)),
    prune: async () => 0,
    list: async (t) => [...rows.values()].filter((r) => r.tenantId === t),
  };
}

type Published = { subject: string; payload: any; msgId?: string | undefined };

function setup(arm: (r: Payload<'activator.req.arm'>) => Promise<ReplyOf<'activator.req.arm'>> = async () => ({ ok: true })) {
  const detector = new IdleDetector({ staleMs: 5000, pendingTtlMs: 60_000 });
  detector.poolChanged({ tenantId, poolId, spec }, Date.now());
  detector.nodeStarted({ tenantId, poolId, nodeId, ports }, Date.now());
  const published: Published[] = [];
  const armed: Payload<'activator.req.arm'>[] = [];
  const refreshed: string[] = [];
  const policies = memoryPolicies();
  const silent = { info: () => undefined, warn: () => undefined };
  const deps = {
    detector,
    policies,
    log: silent,
    refresh: async (t: string) => void refreshed.push(t),
    arm: async (r: Payload<'activator.req.arm'>) => {
      armed.push(r);
      return arm(r);
    },
    publish: (async (subject: string, payload: unknown, opts?: { msgId?: string }) => {
      published.push({ subject, payload, msgId: opts?.msgId });
    }) as never,
  };
  const handlers = createHandlers(deps);
  const delivery = { subject: 'sleep.cmd.node' as const, deliveryCount: 1, streamSequence: 1 };
  const subjects = () => published.map((p) => p.subject);
  return { detector, policies, published, armed, refreshed, handlers, deps, delivery, subjects };
}

describe('sleep.cmd.node', () => {
  it('arms the catch with the pool policy, then asks ENM to sleep the node under the order and records a manual sleep', async () => {
    const t = setup();
    await t.policies.set(tenantId, poolId, policy);
    await t.handlers.commands['sleep.cmd.node']({ orderId, tenantId, nodeId }, t.delivery);
    expect(t.armed).toEqual([{ tenantId, poolId, nodeId, ports, probeIntervalMs: 20, probeTimeoutMs: 5000 }]);
    expect(t.published).toEqual([
      { subject: 'node.cmd.sleep', payload: { orderId, tenantId, nodeId, reason: 'sleep' }, msgId: `node.cmd.sleep:${orderId}` },
      {
        subject: 'sleep.evt.slept',
        payload: { tenantId, poolId, nodeId, at: expect.any(String), reason: 'manual', idleSec: 0 },
        msgId: `sleep.evt.slept:${orderId}`,
      },
    ]);
  });

  it('uses the default probe settings for a pool without a policy', async () => {
    const t = setup();
    await t.handlers.commands['sleep.cmd.node']({ orderId, tenantId, nodeId }, t.delivery);
    expect(t.armed[0]).toMatchObject({ probeIntervalMs: 30, probeTimeoutMs: 10_000 });
  });

  it('fails the order and leaves the node running when the activator refuses or does not answer', async () => {
    const refused = setup(async () => ({ ok: false, error: 'nft: permission denied' }));
    await refused.handlers.commands['sleep.cmd.node']({ orderId, tenantId, nodeId }, refused.delivery);
    expect(refused.published).toEqual([
      {
        subject: 'order.evt.failed',
        payload: { orderId, tenantId, reason: `the socket activator refused to arm the catch of node ${nodeId}: nft: permission denied` },
        msgId: `order.evt.failed:${orderId}`,
      },
    ]);
    // Not left marked as on its way to sleep: a second order may try again.
    expect(refused.detector.beginSleep(nodeId, Date.now())).toBe(true);

    const silent = setup(async () => {
      throw new Error('TIMEOUT');
    });
    await silent.handlers.commands['sleep.cmd.node']({ orderId, tenantId, nodeId }, silent.delivery);
    expect(silent.published.map((p) => [p.subject, p.payload.reason])).toEqual([['order.evt.failed', `the socket activator did not arm the catch of node ${nodeId}: TIMEOUT`]]);
  });

  it('fails an order for a node it does not know after asking for the tenant’s snapshot, one not running, or one without ports', async () => {
    const t = setup();
    const unknown = '99999999-8888-4777-8666-00000000000f';
    await t.handlers.commands['sleep.cmd.node']({ orderId, tenantId, nodeId: unknown }, t.delivery);
    expect(t.refreshed).toEqual([tenantId]);
    t.detector.nodeStopped({ nodeId, reason: 'stop' }, Date.now());
    await t.handlers.commands['sleep.cmd.node']({ orderId, tenantId, nodeId }, t.delivery);
    t.detector.nodeStarted({ tenantId, poolId, nodeId, ports: [] }, Date.now());
    await t.handlers.commands['sleep.cmd.node']({ orderId, tenantId, nodeId }, t.delivery);
    expect(t.published.map((p) => p.payload.reason)).toEqual([
      `unknown node ${unknown}`,
      `node ${nodeId} is stopped; only a running node can be put to sleep`,
      `node ${nodeId} has no published ports for the activator to catch`,
    ]);
    expect(t.armed).toEqual([]);
  });

  it("does not take another tenant's node", async () => {
    const t = setup();
    const other = '0c0ffee0-0000-4abc-8def-0123456789ab';
    await t.handlers.commands['sleep.cmd.node']({ orderId, tenantId: other, nodeId }, t.delivery);
    expect(t.published.map((p) => p.payload.reason)).toEqual([`unknown node ${nodeId}`]);
  });

  it('fulfils at once for a node already asleep, and refuses a second sleep while one is under way', async () => {
    const t = setup();
    expect(t.detector.beginSleep(nodeId, Date.now())).toBe(true);
    await t.handlers.commands['sleep.cmd.node']({ orderId, tenantId, nodeId }, t.delivery);
    expect(t.published.map((p) => p.payload.reason)).toEqual([`node ${nodeId} is already being put to sleep`]);
    t.detector.nodeStopped({ nodeId, reason: 'sleep' }, Date.now());
    await t.handlers.commands['sleep.cmd.node']({ orderId, tenantId, nodeId }, t.delivery);
    expect(t.published[1]).toEqual({
      subject: 'order.evt.fulfilled',
      payload: { orderId, tenantId, result: { poolId, nodeIds: [nodeId] } },
      msgId: `order.evt.fulfilled:${orderId}`,
    });
  });

  it('dead-letters a failing command that carries no order', async () => {
    const t = setup(async () => ({ ok: false, error: 'no' }));
    await expect(t.handlers.commands['sleep.cmd.node']({ tenantId, nodeId }, t.delivery)).rejects.toBeInstanceOf(Rejection);
    expect(t.published).toEqual([]);
  });
});

describe('sleep.cmd.policy', () => {
  it('stores the policy, announces it and fulfils the order', async () => {
    const t = setup();
    await t.handlers.commands['sleep.cmd.policy']({ orderId, tenantId, poolId, policy }, t.delivery);
    expect(t.policies.get(tenantId, poolId)).toEqual(policy);
    expect(t.published).toEqual([
      { subject: 'sleep.evt.policy', payload: { tenantId, poolId, policy, at: expect.any(String) }, msgId: `sleep.evt.policy:${orderId}` },
      { subject: 'order.evt.fulfilled', payload: { orderId, tenantId, result: { poolId } }, msgId: `order.evt.fulfilled:${orderId}` },
    ]);
  });

  it('fails an order for a pool unknown after a fresh snapshot, or a probe timeout shorter than the interval', async () => {
    const t = setup();
    const unknown = '11111111-2222-4333-8444-00000000000f';
    await t.handlers.commands['sleep.cmd.policy']({ orderId, tenantId, poolId: unknown, policy }, t.delivery);
    await t.handlers.commands['sleep.cmd.policy']({ orderId, tenantId, poolId, policy: { ...policy, probeTimeoutMs: 10 } }, t.delivery);
    expect(t.refreshed).toEqual([tenantId]);
    expect(t.published.map((p) => [p.subject, p.payload.reason])).toEqual([
      ['order.evt.failed', `unknown pool ${unknown}`],
      ['order.evt.failed', 'invalid sleep policy: probeTimeoutMs: must not be shorter than probeIntervalMs (20)'],
    ]);
    expect(t.policies.get(tenantId, poolId)).toBeUndefined();
  });
});

describe('pool events', () => {
  it("seeds a pool's policy from its spec once; a policy set through the API is not overwritten", async () => {
    const t = setup();
    await t.handlers.events['pool.evt.changed']({ tenantId, poolId, name: 'app', spec: { ...spec, sleep: policy }, at: new Date().toISOString() });
    expect(t.policies.get(tenantId, poolId)).toEqual(policy);
    await t.handlers.commands['sleep.cmd.policy']({ tenantId, poolId, policy: { ...policy, enabled: false } }, t.delivery);
    await t.handlers.events['pool.evt.changed']({ tenantId, poolId, name: 'app', spec: { ...spec, sleep: policy }, at: new Date().toISOString() });
    expect(t.policies.get(tenantId, poolId)?.enabled).toBe(false);
    expect(t.published.map((p) => p.subject)).toEqual(['sleep.evt.policy', 'sleep.evt.policy']);
  });

  it('forgets the policy and nodes of a deleted pool', async () => {
    const t = setup();
    await t.policies.set(tenantId, poolId, policy);
    await t.handlers.events['pool.evt.deleted']({ tenantId, poolId, at: new Date().toISOString() });
    expect(t.policies.get(tenantId, poolId)).toBeUndefined();
    expect(t.detector.node(nodeId)).toBeUndefined();
  });
});

describe('sleepIdleNodes', () => {
  function idleNode(t: ReturnType<typeof setup>) {
    const start = Date.now() - 10_000;
    t.detector.nodeStarted({ tenantId, poolId, nodeId, ports }, start);
    for (let s = 1; s <= 10; s++) t.detector.sample({ nodeId, txPackets: 7, at: new Date(start + s * 1000 - 1).toISOString() });
  }

  it('puts an idle node to sleep with the reason and how long it was idle', async () => {
    const t = setup();
    await t.policies.set(tenantId, poolId, policy);
    idleNode(t);
    await sleepIdleNodes({ ...t.deps, retryMs: 5000 }, Date.now());
    expect(t.published.map((p) => [p.subject, p.payload.reason])).toEqual([
      ['node.cmd.sleep', 'sleep'],
      ['sleep.evt.slept', 'idle: no outbound packets for 10 s'],
    ]);
    expect(t.published[1]?.payload.idleSec).toBe(10);
    // Under way: the next round does not choose it again.
    await sleepIdleNodes({ ...t.deps, retryMs: 5000 }, Date.now());
    expect(t.armed).toHaveLength(1);
  });

  it('leaves the node awake when arming fails, and does not ask again before the retry delay', async () => {
    const t = setup(async () => ({ ok: false, error: 'busy' }));
    await t.policies.set(tenantId, poolId, policy);
    idleNode(t);
    await sleepIdleNodes({ ...t.deps, retryMs: 60_000 }, Date.now());
    await sleepIdleNodes({ ...t.deps, retryMs: 60_000 }, Date.now());
    expect(t.armed).toHaveLength(1);
    expect(t.published).toEqual([]);
    expect(t.detector.node(nodeId)?.status).toBe('running');
  });
});
