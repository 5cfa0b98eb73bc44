import { describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { AclDenials, AclGate, AclPolicyBook, rebuildAclPolicies, type AclEvaluator, type AclPolicyItem } from '../src/acl-policies.js';

const A = '0b3c2f0e-5d4a-4f1e-9f7a-1c2d3e4f5a6b';
const B = '7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f';

/**
 * A stand-in compiler: a "policy" is `{ allow: <port> }` (rule 0 accepts that port) and
 * anything else fails to compile, so these tests are about the book, not about libs/acl.
 */
function compile(doc: unknown): AclEvaluator & { doc: unknown } {
  const port = (doc as { allow?: unknown })?.allow;
  if (typeof port !== 'number') throw new Error('acls: expected { allow: <port> }');
  return { doc, decide: (_src, dst) => (dst.port === port ? { allowed: true, rule: 0 } : { allowed: false, rule: null }) };
}

const item = (tenantId: string, version: number, policy: unknown): AclPolicyItem => ({ tenantId, version, policy });
const allows = (book: AclPolicyBook, tenantId: string, port: number) => book.policyOf(tenantId)?.decide({ address: '10.0.0.1' }, { tags: [], port }).allowed;

function book(now = () => 1_000_000) {
  const invalid: Array<{ tenantId: string; reason: string; from: string }> = [];
  const b = new AclPolicyBook({ compile, now, onInvalid: (i, reason, from) => invalid.push({ tenantId: i.tenantId, reason, from }) });
  return { b, invalid };
}

describe('AclPolicyBook', () => {
  it('applies a newer version and ignores an older or equal one', () => {
    const { b } = book();
    expect(b.changed(item(A, 2, { allow: 80 }))).toBe(true);
    expect(b.changed(item(A, 1, { allow: 443 }))).toBe(false);
    expect(b.changed(item(A, 2, { allow: 443 }))).toBe(false);
    expect(allows(b, A, 80)).toBe(true);
    expect(b.changed(item(A, 3, { allow: 443 }))).toBe(true);
    expect([allows(b, A, 80), allows(b, A, 443)]).toEqual([false, true]);
  });

  it('keeps tenants apart: one tenant without a policy has none whatever another has', () => {
    const { b } = book();
    b.changed(item(A, 1, { allow: 80 }));
    expect(b.policyOf(B)).toBeUndefined();
    expect(b.size).toBe(1);
  });

  it('forgets a deleted policy, and an older version cannot bring it back', () => {
    const { b } = book();
    b.changed(item(A, 1, { allow: 80 }));
    b.changed(item(A, 2, null));
    expect(b.policyOf(A)).toBeUndefined();
    expect(b.changed(item(A, 1, { allow: 80 }))).toBe(false);
    b.replace([item(A, 1, { allow: 80 })]);
    expect(b.policyOf(A)).toBeUndefined();
    expect(b.versionOf(A)).toBe(2);
  });

  it('reports a policy that does not compile and keeps the previous one; its version blocks nothing', () => {
    const { b, invalid } = book();
    b.changed(item(A, 1, { allow: 80 }));
    expect(b.changed(item(A, 99, { acls: 'nonsense' }))).toBe(false);
    expect(invalid).toEqual([{ tenantId: A, reason: 'acls: expected { allow: <port> }', from: 'event' }]);
    expect(allows(b, A, 80)).toBe(true);
    expect(b.versionOf(A)).toBe(1);
    expect(b.changed(item(A, 2, { allow: 443 }))).toBe(true);
    expect(allows(b, A, 443)).toBe(true);
  });

  it('refuses everything for a tenant whose only policy does not compile (default deny, never open)', () => {
    const { b, invalid } = book();
    b.replace([item(A, 1, 'not a policy')]);
    expect(invalid.map((i) => i.from)).toEqual(['snapshot']);
    expect(allows(b, A, 80)).toBe(false);
    expect(allows(b, A, 443)).toBe(false);
    // Repaired by the owner's next word, and dropped like any other once no snapshot lists it.
    b.changed(item(A, 1, { allow: 80 }));
    expect(allows(b, A, 80)).toBe(true);
    b.changed(item(B, 3, 'not a policy'));
    b.replace([], Date.now() + 60_000);
    expect(b.policyOf(B)).toBeUndefined();
  });

  it('is not loaded until a snapshot was read', () => {
    const { b } = book();
    b.changed(item(A, 1, { allow: 80 }));
    expect(b.loaded).toBe(false);
    b.replace([item(A, 1, { allow: 80 })]);
    expect(b.loaded).toBe(true);
  });

  it('drops a tenant the snapshot no longer lists, unless an event set it since shortly before the snapshot was asked for', () => {
    let now = 1_000_000;
    const { b } = book(() => now);
    b.replace([item(A, 1, { allow: 80 })]);
    b.changed(item(B, 1, { allow: 22 }));
    // A snapshot asked for 1 s after B's event does not list B yet: B stays.
    now += 1000;
    b.replace([item(A, 1, { allow: 80 })], now);
    expect(allows(b, B, 22)).toBe(true);
    // Much later, B still unlisted: gone (its deletion was missed), A too once unlisted.
    now += 60_000;
    b.replace([], now);
    expect([b.policyOf(A), b.policyOf(B)]).toEqual([undefined, undefined]);
  });

  it('takes a snapshot row newer than what an event set', () => {
    const { b } = book();
    b.changed(item(A, 1, { allow: 80 }));
    b.replace([item(A, 4, { allow: 443 })]);
    expect([allows(b, A, 80), allows(b, A, 443), b.versionOf(A)]).toEqual([false, true, 4]);
  });
});

describe('rebuildAclPolicies', () => {
  it('replaces the book with what the snapshot says', async () => {
    const { b } = book();
    b.changed(item(B, 1, { allow: 22 }));
    await rebuildAclPolicies(b, async () => ({ policies: [item(A, 1, { allow: 80 }), item(B, 2, null)] }))();
    expect([allows(b, A, 80), b.policyOf(B), b.loaded]).toEqual([true, undefined, true]);
  });

  it('leaves the book as it was when the snapshot could not be read', async () => {
    const { b } = book();
    b.replace([item(A, 1, { allow: 80 })]);
    await expect(rebuildAclPolicies(b, async () => Promise.reject(new Error('timeout')))()).rejects.toThrow('timeout');
    expect(allows(b, A, 80)).toBe(true);
  });
});

/** Records the pipelined HINCRBYs; `fail` makes exec reject as a lost connection does. */
function fakeRedis(fail = false) {
  const seen: Array<[string, string, number]> = [];
  let execs = 0;
  const redis = {
    pipeline() {
      const queued: Array<[string, string, number]> = [];
      const pipe = {
        hincrby: (key: string, field: string, n: number) => {
          queued.push([key, field, n]);
          return pipe;
        },
        exec: async () => {
          execs++;
          if (fail) throw new Error('connection lost');
          seen.push(...queued);
          return [];
        },
      };
      return pipe;
    },
  };
  return { redis: redis as unknown as Redis, seen, execs: () => execs, heal: () => void (fail = false) };
}

describe('AclDenials', () => {
  it('adds a burst of denials to Redis as one increment per tenant and rule', async () => {
    const d = new AclDenials();
    for (let i = 0; i < 1000; i++) d.count(A, null);
    d.count(A, 3);
    d.count(B, 0);
    const r = fakeRedis();
    await d.flush(r.redis);
    expect(r.seen.sort()).toEqual([
      [`acl:denied:${A}`, '3', 1],
      [`acl:denied:${A}`, 'default', 1000],
      [`acl:denied:${B}`, '0', 1],
    ]);
    await d.flush(r.redis);
    expect(r.execs()).toBe(1);
  });

  it('keeps the counts for the next flush when Redis is away', async () => {
    const d = new AclDenials();
    d.count(A, 2);
    const r = fakeRedis(true);
    await expect(d.flush(r.redis)).rejects.toThrow('connection lost');
    d.count(A, 2);
    r.heal();
    await d.flush(r.redis);
    expect(r.seen).toEqual([[`acl:denied:${A}`, '2', 2]]);
  });
});

describe('AclGate', () => {
  it('decides nothing for a tenant without a policy, and counts what a policy denies', async () => {
    const { b } = book();
    const logged: object[] = [];
    const gate = new AclGate(b, new AclDenials(), { debug: (o) => logged.push(o) });
    expect([gate.ready, gate.idle]).toEqual([false, false]);
    b.replace([item(A, 1, { allow: 80 })]);
    expect([gate.ready, gate.idle]).toEqual([true, false]);
    expect(gate.allows(B, { address: '10.0.0.1' }, { tags: [], port: 22 }, 'test')).toBe(true);
    expect(gate.allows(A, { address: '10.0.0.1' }, { tags: [], port: 80 }, 'test')).toBe(true);
    expect(gate.allows(A, { address: '10.0.0.1', user: 'mallory' }, { tags: ['tag:db'], port: 5432 }, 'test')).toBe(false);
    expect(logged).toEqual([{ tenantId: A, rule: 'default', user: 'mallory', address: '10.0.0.1', tags: ['tag:db'], port: 5432, where: 'test' }]);
    const r = fakeRedis();
    await gate.denials.flush(r.redis);
    expect(r.seen).toEqual([[`acl:denied:${A}`, 'default', 1]]);
  });
});
