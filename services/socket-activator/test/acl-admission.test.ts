import { describe, expect, it, vi } from 'vitest';
import { AclDenials, AclGate, AclPolicyBook, type AclDestination, type AclEvaluator, type AclSource } from '@switchyard/service-kit';
import { aclAdmission, trustedSources } from '../src/acl-admission.js';
import { PoolTags } from '../src/pool-tags.js';

const A = '0b3c2f0e-5d4a-4f1e-9f7a-1c2d3e4f5a6b';
const B = '7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f';
const POOL_A = '11111111-1111-4111-8111-111111111111';
const POOL_B = '22222222-2222-4222-8222-222222222222';

/** A's policy lets 10.0.0.9 reach tag:web on port 5432; the default deny for the rest. */
function world() {
  const seen: Array<[AclSource, AclDestination]> = [];
  const policy: AclEvaluator = {
    decide: (src, dst) => {
      seen.push([src, dst]);
      return src.address === '10.0.0.9' && dst.tags.includes('tag:web') && dst.port === 5432 ? { allowed: true, rule: 0 } : { allowed: false, rule: null };
    },
  };
  const book = new AclPolicyBook({ compile: (doc) => doc as AclEvaluator });
  const gate = new AclGate(book, new AclDenials(), { debug: () => undefined });
  const tags = new PoolTags();
  const admit = aclAdmission(gate, tags, trustedSources('127.0.0.1/32, 10.9.0.0/16'));
  const load = () => {
    book.replace([{ tenantId: A, version: 1, policy }]);
    tags.replace([
      { poolId: POOL_A, spec: { name: 'db', kind: 'app', nodes: { min: 1, max: 1 }, tags: ['tag:web'] } },
      { poolId: POOL_B, spec: { name: 'db', kind: 'app', nodes: { min: 1, max: 1 }, tags: ['tag:web'] } },
    ]);
  };
  return { admit, gate, book, tags, seen, load };
}

const nodeOf = (tenantId: string, poolId: string) => ({ tenantId, poolId });

describe('aclAdmission', () => {
  it("judges a caught connection by the node's tenant's policy, with the pool's tags and the dialled port", () => {
    const w = world();
    w.load();
    const count = vi.spyOn(w.gate.denials, 'count');
    expect(w.admit(nodeOf(A, POOL_A), '10.0.0.9', 5432)).toBe('allowed');
    expect(w.admit(nodeOf(A, POOL_A), '::ffff:10.0.0.9', 5432)).toBe('allowed');
    expect(w.admit(nodeOf(A, POOL_A), '10.0.0.8', 5432)).toBe('denied');
    expect(w.admit(nodeOf(A, POOL_A), '10.0.0.9', 5433)).toBe('denied');
    expect(w.seen[0]).toEqual([{ address: '10.0.0.9' }, { tags: ['tag:web'], port: 5432 }]);
    expect(count.mock.calls).toEqual([
      [A, null],
      [A, null],
    ]);
    // B has no policy: A's naming the same tag changes nothing for B's pool.
    expect(w.admit(nodeOf(B, POOL_B), '10.0.0.8', 5432)).toBe('allowed');
  });

  it('lets a trusted front door through unjudged: the load balancer judged the connection with its user', () => {
    const w = world();
    w.load();
    expect(w.admit(nodeOf(A, POOL_A), '127.0.0.1', 1)).toBe('allowed');
    expect(w.admit(nodeOf(A, POOL_A), '10.9.3.4', 1)).toBe('allowed');
    expect(w.admit(nodeOf(A, POOL_A), '127.0.0.5', 1)).toBe('denied');
    expect(w.seen).toHaveLength(1);
  });

  it('answers unknown before the policies were read, and for a guarded tenant before the pools were', () => {
    const w = world();
    expect(w.admit(nodeOf(A, POOL_A), '10.0.0.9', 5432)).toBe('unknown');
    w.book.replace([{ tenantId: A, version: 1, policy: { decide: () => ({ allowed: true, rule: 0 }) } }]);
    expect(w.admit(nodeOf(A, POOL_A), '10.0.0.9', 5432)).toBe('unknown');
    expect(w.admit(nodeOf(B, POOL_B), '10.0.0.9', 5432)).toBe('allowed');
    w.tags.replace([]);
    expect(w.admit(nodeOf(A, POOL_A), '10.0.0.9', 5432)).toBe('allowed');
  });
});
