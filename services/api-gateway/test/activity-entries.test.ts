import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ActivityKind, assertPayload, type Payload } from '@switchyard/contracts';
import { migrations } from '../src/migrations.js';
import { activityOf, type ActivityDraft, type ActivitySubject } from '../src/activity-entries.js';

const facts = {
  tenantId: '0b9f4f2e-6a2d-4c1e-9a51-3f5e8f0c2d11',
  poolId: '7d3c2a10-1111-4a2b-8c3d-0e9f8a7b6c5d',
  nodeId: 'a1b2c3d4-0000-4000-8000-000000000001',
  at: '2026-11-24T10:00:00.000Z',
};
const policy = { enabled: true, idleWindowSec: 600, minAwake: 0, probeIntervalMs: 30, probeTimeoutMs: 10_000 };

/** The entry an event makes; the payload is checked against the contracts first, as the bus does. */
function entryOf<S extends ActivitySubject>(subject: S, payload: Payload<S>) {
  assertPayload(subject, payload);
  return (activityOf[subject] as (e: Payload<S>) => ActivityDraft | null)(payload);
}

describe('activity entries', () => {
  it('say what happened in words people read', () => {
    const woke = { ...facts, trigger: 'connection' as const, mode: 'nftables' as const, readyMs: 411.6, firstByteMs: 430, heldConnections: 3 };
    const cases: Array<[string | undefined, string]> = [
      [entryOf('sleep.evt.slept', { ...facts, reason: 'idle: no outbound packets for 600 s', idleSec: 600 })?.message, 'slept: idle: no outbound packets for 600 s'],
      [entryOf('activator.evt.woke', woke)?.message, 'woke in 412 ms (3 held connections)'],
      [entryOf('activator.evt.woke', { ...woke, heldConnections: 1 })?.message, 'woke in 412 ms (1 held connection)'],
      [entryOf('activator.evt.woke', { ...woke, trigger: 'manual', heldConnections: 0 })?.message, 'woke in 412 ms (manual)'],
      [entryOf('activator.evt.failed', { ...facts, reason: 'not ready within 10000 ms', heldConnections: 2 })?.message, 'wake failed: not ready within 10000 ms'],
      [entryOf('sleep.evt.policy', { tenantId: facts.tenantId, poolId: facts.poolId, policy, at: facts.at })?.message, 'sleep policy: enabled, idle 600 s, min awake 0'],
      [
        entryOf('sleep.evt.policy', { tenantId: facts.tenantId, poolId: facts.poolId, policy: { ...policy, enabled: false, minAwake: 2 }, at: facts.at })?.message,
        'sleep policy: disabled, idle 600 s, min awake 2',
      ],
      [entryOf('node.evt.started', { ...facts, containerId: 'c1', ports: [], startMs: 120 })?.message, 'started'],
      [entryOf('node.evt.stopped', { ...facts, containerId: 'c1', reason: 'sleep' })?.message, 'stopped: sleep'],
      [entryOf('node.evt.died', { ...facts, containerId: 'c1', exitCode: 137, oomKilled: false })?.message, 'died (exit code 137)'],
      [entryOf('node.evt.died', { ...facts, containerId: 'c1', exitCode: 137, oomKilled: true })?.message, 'died (exit code 137, out of memory)'],
      [entryOf('node.evt.removed', { ...facts, reason: 'pool deleted' })?.message, 'removed: pool deleted'],
      [entryOf('node.evt.draining', { ...facts, reason: 'scale down' })?.message, 'draining: scale down'],
    ];
    for (const [message, expected] of cases) expect(message).toBe(expected);
  });

  it("keep the event's own fields as details and the node facts as columns", () => {
    const entry = entryOf('activator.evt.woke', { ...facts, trigger: 'connection', mode: 'proxy', readyMs: 300, heldConnections: 2 });
    expect(entry).toEqual({
      tenantId: facts.tenantId,
      source: `activator.evt.woke ${facts.nodeId} ${facts.at}`,
      poolId: facts.poolId,
      nodeId: facts.nodeId,
      kind: 'woke',
      message: 'woke in 300 ms (2 held connections)',
      details: { trigger: 'connection', mode: 'proxy', readyMs: 300, heldConnections: 2 },
      at: new Date(facts.at),
    });
    const changed = entryOf('sleep.evt.policy', { tenantId: facts.tenantId, poolId: facts.poolId, policy, at: facts.at });
    expect(changed).toMatchObject({ poolId: facts.poolId, nodeId: null, kind: 'policy_changed', details: policy });
  });

  it('name the event, not its delivery: the same fact written another way is the same source', () => {
    const stopped = { ...facts, containerId: 'c1', reason: 'sleep' };
    const a = entryOf('node.evt.stopped', stopped);
    const b = entryOf('node.evt.stopped', { ...stopped, at: '2026-11-24T10:00:00Z' });
    expect(a?.source).toBe(b?.source);
    expect(entryOf('node.evt.died', { ...facts, containerId: 'c1', exitCode: 1, oomKilled: false })?.source).not.toBe(a?.source);
    expect(entryOf('node.evt.stopped', { ...stopped, at: '2026-11-24T10:00:00.001Z' })?.source).not.toBe(a?.source);
  });

  it('leave container creation and HEALTHCHECK changes off the timeline', () => {
    expect(entryOf('node.evt.created', { ...facts, name: 'web-0', containerId: 'c1', kind: 'app' })).toBeNull();
    expect(entryOf('node.evt.health', { ...facts, containerId: 'c1', status: 'unhealthy' })).toBeNull();
  });
});

describe('activity entries of tunnels', () => {
  const tunnel = {
    tenantId: facts.tenantId,
    tunnelId: 'f00dfeed-0000-4000-8000-000000000001',
    nodeId: facts.nodeId,
    name: 'web',
    at: facts.at,
  };

  it('say what happened to the tunnel and its paths', () => {
    const cases: Array<[string | undefined, string]> = [
      [entryOf('tunnel.evt.opened', { ...tunnel, endpoint: { host: 'edge.example.net', port: 40001 } })?.message, 'tunnel web open at edge.example.net:40001'],
      [entryOf('tunnel.evt.opened', { ...tunnel, endpoint: null })?.message, 'tunnel web open'],
      [entryOf('tunnel.evt.closed', { ...tunnel, endpoint: null, reason: 'node removed' })?.message, 'tunnel web closed: node removed'],
      [entryOf('tunnel.evt.closed', { ...tunnel, endpoint: null })?.message, 'tunnel web closed'],
      [entryOf('tunnel.evt.up', { ...tunnel, path: 'wireguard', reason: 'probe ok' })?.message, 'wireguard up'],
      [entryOf('tunnel.evt.down', { ...tunnel, path: 'ssh', reason: 'ssh probe failed 3× (ECONNREFUSED)' })?.message, 'ssh down: ssh probe failed 3× (ECONNREFUSED)'],
      [
        entryOf('tunnel.evt.failover', { ...tunnel, from: 'wireguard', to: 'ssh', reason: 'switched to ssh: wireguard probe failed 3×' })?.message,
        'switched to ssh: wireguard probe failed 3×',
      ],
      [
        entryOf('tunnel.evt.failover', { ...tunnel, from: 'ssh', to: 'wireguard', reason: 'back to wireguard: healthy for 30.1 s' })?.message,
        'back to wireguard: healthy for 30.1 s',
      ],
      [entryOf('tunnel.evt.failover', { ...tunnel, from: 'ssh', to: null, reason: '' })?.message, 'no path up'],
      [entryOf('tunnel.evt.rotated', { ...tunnel, paths: ['wireguard', 'ssh'], reason: 'scheduled' })?.message, 'keys rotated: wireguard, ssh'],
      [entryOf('tunnel.evt.expired', { ...tunnel, paths: ['ssh'], reason: 'not rotated within 90 days' })?.message, 'key expired: ssh'],
    ];
    for (const [message, expected] of cases) expect(message).toBe(expected);
  });

  it('file the entry under the node with no pool, and keep the tunnel, its name and the rest as details', () => {
    expect(entryOf('tunnel.evt.down', { ...tunnel, path: 'ssh', reason: 'session ended' })).toEqual({
      tenantId: facts.tenantId,
      source: `tunnel.evt.down ${tunnel.tunnelId} ssh ${facts.at}`,
      poolId: null,
      nodeId: facts.nodeId,
      kind: 'path_down',
      message: 'ssh down: session ended',
      details: { tunnelId: tunnel.tunnelId, name: 'web', path: 'ssh', reason: 'session ended' },
      at: new Date(facts.at),
    });
    const kinds = [
      entryOf('tunnel.evt.opened', { ...tunnel, endpoint: { host: 'edge', port: 1 } }),
      entryOf('tunnel.evt.closed', { ...tunnel, endpoint: null }),
      entryOf('tunnel.evt.up', { ...tunnel, path: 'ssh', reason: '' }),
      entryOf('tunnel.evt.down', { ...tunnel, path: 'ssh', reason: '' }),
      entryOf('tunnel.evt.failover', { ...tunnel, from: null, to: 'ssh', reason: '' }),
      entryOf('tunnel.evt.rotated', { ...tunnel, paths: ['ssh'], reason: '' }),
      entryOf('tunnel.evt.expired', { ...tunnel, paths: ['ssh'], reason: '' }),
    ];
    expect(kinds.map((e) => e?.kind)).toEqual(['tunnel_opened', 'tunnel_closed', 'path_up', 'path_down', 'path_switched', 'keys_rotated', 'key_expired']);
    for (const e of kinds) expect(e).toMatchObject({ poolId: null, nodeId: facts.nodeId, details: { tunnelId: tunnel.tunnelId, name: 'web' } });
  });

  it('tell apart two paths that change at the same instant, and not two deliveries of one event', () => {
    const down = (path: 'wireguard' | 'ssh', at = facts.at) => entryOf('tunnel.evt.down', { ...tunnel, path, reason: 'x', at })?.source;
    expect(down('wireguard')).not.toBe(down('ssh'));
    expect(down('ssh')).toBe(down('ssh', '2026-11-24T10:00:00Z'));
    const rotated = (paths: Array<'wireguard' | 'ssh'>) => entryOf('tunnel.evt.rotated', { ...tunnel, paths, reason: 'x' })?.source;
    expect(rotated(['wireguard'])).not.toBe(rotated(['ssh']));
    expect(entryOf('tunnel.evt.up', { ...tunnel, path: 'ssh', reason: 'x' })?.source).not.toBe(down('ssh'));
  });
});

describe('the activity table', () => {
  it('takes every kind of the contracts (the latest migration that sets activity_kind_check lists them all)', () => {
    const files = Object.keys(migrations).map((name) => readFileSync(new URL(`../src/migrations/${name}.ts`, import.meta.url), 'utf8'));
    const latest = files.filter((f) => f.includes('activity_kind_check')).at(-1)!;
    const allowed = [.../check \(kind in \(([^)]*)\)\)/.exec(latest)![1]!.matchAll(/'(\w+)'/g)].map((m) => m[1]);
    expect(allowed.sort()).toEqual(ActivityKind.anyOf.map((k) => k.const).sort());
  });
});
