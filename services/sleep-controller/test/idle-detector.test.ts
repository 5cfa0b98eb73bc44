import { describe, expect, it } from 'vitest';
import type { NodeView, PoolSpec, SleepPolicy } from '@switchyard/contracts';
import { aNodeView } from '@switchyard/testkit/fixtures';
import { IdleDetector } from '../src/idle-detector.js';

const tenantId = '0c0ffee0-1234-4abc-8def-0123456789ab';
const poolId = '11111111-2222-4333-8444-555555555555';
const otherPool = '22222222-2222-4333-8444-555555555555';
const node = (n: number) => `99999999-8888-4777-8666-00000000000${n}`;
const T0 = Date.parse('2026-11-23T12:00:00.000Z');
const at = (ms: number) => new Date(T0 + ms).toISOString();
const ports = [{ name: 'http', containerPort: 8000, hostIp: '127.0.0.1', hostPort: 41000 }];
const spec: PoolSpec = { name: 'app', kind: 'app', image: 'x', nodes: { min: 1, max: 3 }, ports: [{ name: 'http', containerPort: 8000 }] };
const policy: SleepPolicy = { enabled: true, idleWindowSec: 5, minAwake: 0, probeIntervalMs: 30, probeTimeoutMs: 10_000 };

function setup(opts: { nodes?: number; policy?: Partial<SleepPolicy>; spec?: Partial<PoolSpec> } = {}) {
  const detector = new IdleDetector({ staleMs: 5000, pendingTtlMs: 60_000 });
  detector.poolChanged({ tenantId, poolId, spec: { ...spec, ...opts.spec } }, T0);
  for (let n = 1; n <= (opts.nodes ?? 1); n++) detector.nodeStarted({ tenantId, poolId, nodeId: node(n), ports }, T0);
  const p = { ...policy, ...opts.policy };
  const policyOf = (t: string, pool: string) => (t === tenantId && pool === poolId ? p : undefined);
  const sample = (n: number, ms: number, txPackets: number, rxPackets = 0) => {
    // What node.evt.stats carries, received packets included.
    const stats = { nodeId: node(n), txPackets, rxPackets, at: at(ms) };
    detector.sample(stats);
  };
  const chosen = (ms: number) => detector.candidates(policyOf, T0 + ms).map((c) => [c.node.nodeId, c.idleSec]);
  return { detector, sample, chosen };
}

describe('IdleDetector', () => {
  it('calls a node idle once its transmitted packets have not grown for the window', () => {
    const { sample, chosen } = setup();
    for (let s = 1; s <= 4; s++) sample(1, s * 1000, 10);
    expect(chosen(4000)).toEqual([]);
    sample(1, 5000, 10);
    expect(chosen(5000)).toEqual([[node(1), 5]]);
  });

  it('keeps a node with outbound traffic awake: each growth restarts the window', () => {
    const { sample, chosen } = setup();
    for (let s = 1; s <= 12; s++) {
      sample(1, s * 1000, s * 3);
      expect(chosen(s * 1000)).toEqual([]);
    }
    // Growth stops at 12 s: idle from there, due 5 s later.
    for (let s = 13; s <= 16; s++) sample(1, s * 1000, 36);
    expect(chosen(16_000)).toEqual([]);
    sample(1, 17_000, 36);
    expect(chosen(17_000)).toEqual([[node(1), 5]]);
  });

  it('ignores received packets: inbound-only noise does not keep a node awake', () => {
    const { sample, chosen } = setup();
    for (let s = 1; s <= 6; s++) sample(1, s * 1000, 10, s * 1000);
    expect(chosen(6000)).toEqual([[node(1), 6]]);
  });

  it('restarts the window when the node starts again, and drops samples taken before', () => {
    const { detector, sample, chosen } = setup();
    for (let s = 1; s <= 6; s++) sample(1, s * 1000, 10);
    expect(chosen(6000)).toHaveLength(1);
    detector.nodeStarted({ tenantId, poolId, nodeId: node(1), ports }, T0 + 6500);
    // A late sample of the old container changes nothing.
    sample(1, 6000, 10);
    expect(detector.idleMs(node(1), T0 + 6600)).toBeUndefined();
    for (let s = 7; s <= 11; s++) sample(1, s * 1000, 2);
    expect(chosen(11_000)).toEqual([]);
    sample(1, 11_500, 2);
    expect(chosen(11_500)).toEqual([[node(1), 5]]);
  });

  it('treats a tx count that went down as a new container: its window starts again', () => {
    const { sample, chosen } = setup();
    for (let s = 1; s <= 4; s++) sample(1, s * 1000, 50);
    sample(1, 5000, 3);
    sample(1, 6000, 3);
    expect(chosen(6000)).toEqual([]);
    sample(1, 10_000, 3);
    expect(chosen(10_000)).toEqual([[node(1), 5]]);
  });

  it('makes no decision without a fresh sample: none since the start, or the last one stale', () => {
    const { detector, sample, chosen } = setup();
    expect(chosen(60_000)).toEqual([]);
    sample(1, 1000, 10);
    sample(1, 6000, 10);
    expect(chosen(6000)).toHaveLength(1);
    // The same facts, judged after the stats stopped coming: cannot tell.
    expect(chosen(11_001)).toEqual([]);
    expect(detector.idleMs(node(1), T0 + 11_001)).toBeUndefined();
  });

  it('keeps minAwake nodes of the pool running, putting the longest idle to sleep first', () => {
    const { detector, sample, chosen } = setup({ nodes: 3, policy: { minAwake: 1 } });
    for (let s = 1; s <= 10; s++) {
      sample(1, s * 1000, 5);
      sample(2, s * 1000, Math.min(s, 2)); // idle from 2 s
      sample(3, s * 1000, Math.min(s, 4)); // idle from 4 s
    }
    expect(chosen(10_000)).toEqual([
      [node(1), 10],
      [node(2), 8],
    ]);
    detector.nodeStopped({ nodeId: node(1), reason: 'sleep' }, T0 + 10_000);
    expect(chosen(10_000)).toEqual([[node(2), 8]]);
    detector.nodeStopped({ nodeId: node(2), reason: 'sleep' }, T0 + 10_000);
    expect(chosen(10_000)).toEqual([]);
    expect(detector.node(node(1))?.status).toBe('sleeping');
  });

  it('does not choose a node twice while it is being put to sleep, nor count it as awake', () => {
    const { detector, sample, chosen } = setup({ nodes: 2, policy: { minAwake: 1 } });
    for (let s = 1; s <= 6; s++) {
      sample(1, s * 1000, 1);
      sample(2, s * 1000, 1);
    }
    expect(chosen(6000)).toEqual([[node(1), 6]]);
    expect(detector.beginSleep(node(1), T0 + 6000)).toBe(true);
    expect(detector.beginSleep(node(1), T0 + 6000)).toBe(false);
    // Node 1 is on its way to sleep: node 2 is the one kept awake.
    expect(chosen(6000)).toEqual([]);
  });

  it('waits until retryAt after a failed attempt, then tries again', () => {
    const { detector, sample, chosen } = setup();
    for (let s = 1; s <= 6; s++) sample(1, s * 1000, 1);
    expect(detector.beginSleep(node(1), T0 + 6000)).toBe(true);
    detector.sleepFailed(node(1), T0 + 9000);
    sample(1, 7000, 1);
    expect(chosen(7000)).toEqual([]);
    sample(1, 9000, 1);
    expect(chosen(9000)).toEqual([[node(1), 9]]);
  });

  it('considers a node again when the sleep it was given was lost', () => {
    const detector = new IdleDetector({ staleMs: 5000, pendingTtlMs: 3000 });
    detector.poolChanged({ tenantId, poolId, spec }, T0);
    detector.nodeStarted({ tenantId, poolId, nodeId: node(1), ports }, T0);
    for (let s = 1; s <= 6; s++) detector.sample({ nodeId: node(1), txPackets: 1, at: at(s * 1000) });
    detector.beginSleep(node(1), T0 + 6000);
    detector.sample({ nodeId: node(1), txPackets: 1, at: at(9000) });
    expect(detector.candidates(() => policy, T0 + 9000)).toEqual([]);
    detector.sample({ nodeId: node(1), txPackets: 1, at: at(9500) });
    expect(detector.candidates(() => policy, T0 + 9500)).toHaveLength(1);
  });

  it('leaves pools alone whose policy is off or missing, and host-network pools (Docker counts no packets there)', () => {
    for (const opts of [{ policy: { enabled: false } }, { spec: { network: 'host' as const } }]) {
      const { sample, chosen } = setup(opts);
      for (let s = 1; s <= 10; s++) sample(1, s * 1000, 1);
      expect(chosen(10_000)).toEqual([]);
    }
    const { detector, sample } = setup();
    for (let s = 1; s <= 10; s++) sample(1, s * 1000, 1);
    expect(detector.candidates(() => undefined, T0 + 10_000)).toEqual([]);
  });

  it('leaves a node without published ports awake: nothing could catch a connection to it', () => {
    const { detector, chosen } = setup();
    detector.nodeStarted({ tenantId, poolId, nodeId: node(1), ports: [] }, T0);
    for (let s = 1; s <= 6; s++) detector.sample({ nodeId: node(1), txPackets: 1, at: at(s * 1000) });
    expect(chosen(6000)).toEqual([]);
  });

  describe('rebuilt from a snapshot', () => {
    const view = (n: number, status: NodeView['status'], pool = poolId): NodeView =>
      aNodeView({ tenantId, poolId: pool, nodeId: node(n), name: `app-${n}`, kind: 'app', status, containerId: 'c', ports });
    const pools = [{ tenantId, poolId, name: 'app', spec }];

    it('keeps the window of a node that kept running, and starts one for a node it did not know', () => {
      const { detector, sample, chosen } = setup();
      for (let s = 1; s <= 4; s++) sample(1, s * 1000, 1);
      detector.replace({ pools, nodes: [view(1, 'running'), view(2, 'running')] }, T0 + 4000, T0 + 4000);
      for (let s = 5; s <= 8; s++) {
        sample(1, s * 1000, 1);
        sample(2, s * 1000, 1);
      }
      // Node 2's window began when the snapshot showed it (4 s): 4 s idle, not yet due.
      expect(chosen(8000)).toEqual([[node(1), 8]]);
    });

    it('lets an event newer than the snapshot request win, and forgets what the snapshot lacks', () => {
      const { detector } = setup({ nodes: 2 });
      detector.nodeStopped({ nodeId: node(1), reason: 'sleep' }, T0 + 2000);
      detector.nodeRemoved({ nodeId: node(2) }, T0 + 2000);
      // Asked for before those events: it still shows both running.
      detector.replace({ pools, nodes: [view(1, 'running'), view(2, 'running')] }, T0 + 1000, T0 + 2500);
      expect(detector.node(node(1))?.status).toBe('sleeping');
      expect(detector.node(node(2))).toBeUndefined();
      // Asked for later, without node 1: gone.
      detector.replace({ pools, nodes: [] }, T0 + 3000, T0 + 3500);
      expect(detector.node(node(1))).toBeUndefined();
    });

    it('rebuilds one tenant without touching the others', () => {
      const { detector } = setup();
      const other = '0c0ffee0-0000-4abc-8def-0123456789ab';
      detector.replace({ pools: [], nodes: [] }, T0 + 1000, T0 + 1000, other);
      expect(detector.node(node(1))?.status).toBe('running');
      expect(detector.pool(tenantId, poolId)).toBeDefined();
      expect(detector.pool(tenantId, otherPool)).toBeUndefined();
    });
  });
});
