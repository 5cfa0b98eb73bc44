import { describe, expect, it, vi } from 'vitest';
import { AclDenials, AclGate, AclPolicyBook, type AclEvaluator } from '@switchyard/service-kit';
import { aNodeServing, aPoolView } from '@switchyard/testkit/fixtures';
import { TrafficCounters } from '../src/counters.js';
import { admitRoute, clientAddress } from '../src/dataplane/acl.js';
import { Router } from '../src/router.js';
import { RoutingTable } from '../src/table.js';

const A = '0b3c2f0e-5d4a-4f1e-9f7a-1c2d3e4f5a6b';
const B = '7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f';

/** Two tenants' exit pools in JP, as an open proxy sees them: both are candidates of one route. */
function world(policies: Record<string, AclEvaluator>) {
  const poolA = aPoolView({ name: 'a-jp', country: 'JP', tags: ['tag:exit'] }, { tenantId: A });
  const poolB = aPoolView({ name: 'b-jp', country: 'JP', tags: ['tag:exit'] }, { tenantId: B });
  const table = new RoutingTable(new TrafficCounters());
  table.replace({ pools: [poolA, poolB], nodes: [aNodeServing(poolA, 30001), aNodeServing(poolB, 30002)] }, undefined);
  const router = new Router(table, { get: () => undefined }, 'round_robin', []);
  const book = new AclPolicyBook({ compile: (doc) => doc as AclEvaluator });
  book.replace(Object.entries(policies).map(([tenantId, policy]) => ({ tenantId, version: 1, policy })));
  const gate = new AclGate(book, new AclDenials(), { debug: () => undefined });
  return { route: router.exitRoute('JP', undefined), gate, poolA, poolB };
}

const denyAll: AclEvaluator = { decide: () => ({ allowed: false, rule: null }) };

describe('admitRoute', () => {
  it("judges each pool by its own tenant's policy: A's refusal leaves B's pool, which has no policy, to serve", () => {
    const { route, gate, poolB } = world({ [A]: denyAll });
    const count = vi.spyOn(gate.denials, 'count');
    const admitted = admitRoute(gate, route, { address: '10.0.0.1' }, 443, 'test');
    expect(typeof admitted === 'string' ? admitted : admitted.pools.map((p) => p.id)).toEqual([poolB.poolId]);
    if (typeof admitted !== 'string') expect(admitted.members.map((n) => n.poolId)).toEqual([poolB.poolId]);
    // Not a denial of the connection: nothing counted.
    expect(count).not.toHaveBeenCalled();
  });

  it('refuses when every pool refuses, and counts each tenant and rule once', () => {
    const byRule: AclEvaluator = { decide: (_s, dst) => ({ allowed: false, rule: dst.port === 22 ? 4 : null }) };
    const { route, gate } = world({ [A]: denyAll, [B]: byRule });
    const count = vi.spyOn(gate.denials, 'count');
    expect(admitRoute(gate, route, { address: '10.0.0.1', user: 'x' }, 22, 'test')).toBe('denied');
    expect(count.mock.calls).toEqual([
      [A, null],
      [B, 4],
    ]);
  });

  it('hands the route through untouched when no tenant has a policy, or when every pool allows', () => {
    const none = world({});
    expect(admitRoute(none.gate, none.route, { address: '10.0.0.1' }, 443, 'test')).toBe(none.route);
    const seen: Array<readonly string[]> = [];
    const allow: AclEvaluator = {
      decide: (_s, dst) => {
        seen.push(dst.tags);
        return { allowed: true, rule: 0 };
      },
    };
    const both = world({ [A]: allow, [B]: allow });
    expect(admitRoute(both.gate, both.route, { address: '10.0.0.1' }, 443, 'test')).toBe(both.route);
    // The destination carries the pool's tags.
    expect(seen).toEqual([['tag:exit'], ['tag:exit']]);
  });

  it('refuses as unknown before the policies were read', () => {
    const { route } = world({});
    const gate = new AclGate(new AclPolicyBook({ compile: (doc) => doc as AclEvaluator }), new AclDenials(), { debug: () => undefined });
    expect(admitRoute(gate, route, { address: '10.0.0.1' }, 443, 'test')).toBe('unknown');
  });
});

describe('clientAddress', () => {
  it('strips the IPv4-mapped prefix of a dual-stack socket, and keeps IPv6 as it is', () => {
    expect(clientAddress('::ffff:10.1.2.3')).toBe('10.1.2.3');
    expect(clientAddress('10.1.2.3')).toBe('10.1.2.3');
    expect(clientAddress('fd00::1')).toBe('fd00::1');
    expect(clientAddress(undefined)).toBe('');
  });
});
