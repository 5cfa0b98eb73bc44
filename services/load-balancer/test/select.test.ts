import { describe, expect, it } from 'vitest';
import type { BalancingStrategy } from '@switchyard/contracts';
import { choose, newPickState, rendezvous, type Candidate } from '../src/select.js';

type Node = { -readonly [K in keyof Candidate]: Candidate[K] };

function node(id: string, extra: Partial<Node> = {}): Node {
  return { id, region: null, health: 'healthy', score: 100, latencyMs: 10, active: 0, softLimit: undefined, hardLimit: undefined, ...extra };
}

// A seeded generator so distributions are the same on every run.
function seeded(seed = 42): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Picks `n` times; with `hold` every pick stays open (its node's active count grows). */
function distribute(nodes: Node[], strategy: BalancingStrategy, n: number, hold: boolean): Record<string, number> {
  const state = newPickState(seeded());
  const counts: Record<string, number> = Object.fromEntries(nodes.map((x) => [x.id, 0]));
  for (let i = 0; i < n; i++) {
    const picked = choose(nodes, { strategy }, state) as Node;
    counts[picked.id]!++;
    if (hold) picked.active++;
  }
  return counts;
}

describe('sleeping nodes', () => {
  it('are chosen only when no awake node, healthy or not yet checked, may take the connection', () => {
    const state = newPickState(seeded());
    const asleep = node('s', { asleep: true, health: 'unknown', score: 0 });
    expect(choose([asleep, node('a', { health: 'unknown' })], { strategy: 'round_robin' }, state)!.id).toBe('a');
    expect(choose([asleep, node('a', { health: 'unhealthy' })], { strategy: 'round_robin' }, state)!.id).toBe('s');
    expect(choose([asleep, node('a', { hardLimit: 1, active: 1 })], { strategy: 'round_robin' }, state)!.id).toBe('s');
    expect(choose([asleep], { strategy: 'round_robin', exclude: new Set(['s']) }, state)).toBeUndefined();
    // Marked down when it was stopped for its sleep: still the one to wake.
    expect(choose([node('s', { asleep: true, health: 'unhealthy', score: 0 }), node('a', { health: 'unhealthy' })], { strategy: 'round_robin' }, state)!.id).toBe('s');
  });
});

describe('strategies', () => {
  it('round_robin takes turns', () => {
    expect(distribute([node('a'), node('b'), node('c')], 'round_robin', 60, false)).toEqual({ a: 20, b: 20, c: 20 });
  });
  it('least_connections fills the emptiest node', () => {
    const nodes = [node('a', { active: 10 }), node('b'), node('c')];
    expect(distribute(nodes, 'least_connections', 20, true)).toEqual({ a: 0, b: 10, c: 10 });
    expect(distribute(nodes, 'least_connections', 30, true)).toEqual({ a: 10, b: 10, c: 10 });
  });
  it('random with two choices keeps held connections within a few of each other', () => {
    const counts = distribute([node('a'), node('b'), node('c')], 'random', 600, true);
    const values = Object.values(counts);
    expect(Math.max(...values) - Math.min(...values)).toBeLessThanOrEqual(3);
  });
  it('random spreads short connections over every node', () => {
    const counts = distribute([node('a'), node('b'), node('c')], 'random', 3000, false);
    for (const c of Object.values(counts)) expect(c).toBeGreaterThan(800);
  });
  it('weighted_latency sends more to faster nodes, in proportion to 1/latency', () => {
    const counts = distribute([node('a', { latencyMs: 5 }), node('b', { latencyMs: 10 }), node('c', { latencyMs: 50 })], 'weighted_latency', 16_000, false);
    // Shares 10:5:1 of 16,000 → 10,000, 5,000, 1,000.
    expect(counts['a']).toBeGreaterThan(9500);
    expect(counts['a']).toBeLessThan(10_500);
    expect(counts['b']).toBeGreaterThan(4600);
    expect(counts['c']).toBeGreaterThan(800);
    expect(counts['c']).toBeLessThan(1200);
  });
  it('health_score goes to the best score and shares among equals', () => {
    expect(distribute([node('a', { score: 90 }), node('b', { score: 100 }), node('c', { score: 50 })], 'health_score', 30, false)).toEqual({ a: 0, b: 30, c: 0 });
    expect(distribute([node('a'), node('b'), node('c', { score: 70 })], 'health_score', 30, true)).toEqual({ a: 15, b: 15, c: 0 });
  });
});

describe('eligibility', () => {
  it('prefers healthy nodes, uses unknown ones only without a healthy one, never unhealthy', () => {
    const state = newPickState();
    const mixed = [node('a', { health: 'unknown' }), node('b'), node('c', { health: 'unhealthy' })];
    for (let i = 0; i < 10; i++) expect(choose(mixed, { strategy: 'round_robin' }, state)?.id).toBe('b');
    const noHealthy = [node('a', { health: 'unknown' }), node('c', { health: 'unhealthy' })];
    expect(choose(noHealthy, { strategy: 'round_robin' }, state)?.id).toBe('a');
    expect(choose([node('c', { health: 'unhealthy' })], { strategy: 'round_robin' }, state)).toBeUndefined();
  });
  it('skips nodes already tried', () => {
    const nodes = [node('a'), node('b')];
    expect(choose(nodes, { strategy: 'round_robin', exclude: new Set(['a']) }, newPickState())?.id).toBe('b');
    expect(choose(nodes, { strategy: 'round_robin', exclude: new Set(['a', 'b']) }, newPickState())).toBeUndefined();
  });
  it('uses a node over its soft limit only when none is under, and never one at its hard limit', () => {
    const limits = { softLimit: 2, hardLimit: 3 };
    const nodes = [node('a', limits), node('b', limits)];
    const counts = distribute(nodes, 'round_robin', 6, true);
    expect(counts).toEqual({ a: 3, b: 3 });
    expect(nodes.map((n) => n.active)).toEqual([3, 3]);
    expect(choose(nodes, { strategy: 'round_robin' }, newPickState())).toBeUndefined();
    const soft = [node('a', { ...limits, active: 2 }), node('b', { ...limits, active: 0 })];
    const state = newPickState();
    for (let i = 0; i < 4; i++) expect(choose(soft, { strategy: 'round_robin' }, state)?.id).toBe('b');
  });
});

describe('sticky and geographic affinity', () => {
  it('sends one key to one node, and spreads many keys', () => {
    const nodes = [node('a'), node('b'), node('c')];
    const state = newPickState();
    const first = choose(nodes, { strategy: 'round_robin', stickyKey: 'session-1' }, state)!.id;
    for (let i = 0; i < 20; i++) expect(choose(nodes, { strategy: 'round_robin', stickyKey: 'session-1' }, state)!.id).toBe(first);
    const owners = new Set(Array.from({ length: 60 }, (_, i) => rendezvous(nodes, `s${i}`)!.id));
    expect(owners.size).toBe(3);
  });
  it('moves only the keys of a node that leaves', () => {
    const nodes = [node('a'), node('b'), node('c'), node('d')];
    const before = Array.from({ length: 400 }, (_, i) => rendezvous(nodes, `k${i}`)!.id);
    const after = Array.from(
      { length: 400 },
      (_, i) =>
        rendezvous(
          nodes.filter((n) => n.id !== 'c'),
          `k${i}`,
        )!.id,
    );
    before.forEach((owner, i) => {
      if (owner !== 'c') expect(after[i]).toBe(owner);
    });
  });
  it('falls back to the strategy when the session node is unhealthy', () => {
    const nodes = [node('a'), node('b'), node('c')];
    const owner = rendezvous(nodes, 'sess')!;
    (owner as Node).health = 'unhealthy';
    const picked = choose(nodes, { strategy: 'round_robin', stickyKey: 'sess' }, newPickState());
    expect(picked).toBeDefined();
    expect(picked!.id).not.toBe(owner.id);
  });
  it("prefers nodes of the client's region while any is eligible", () => {
    const nodes = [node('a', { region: 'eu-west' }), node('b', { region: 'us-east' }), node('c', { region: 'eu-west' })];
    const state = newPickState();
    const picks = Array.from({ length: 10 }, () => choose(nodes, { strategy: 'round_robin', clientRegion: 'eu-west' }, state)!.id);
    expect(new Set(picks)).toEqual(new Set(['a', 'c']));
    nodes[0]!.health = 'unhealthy';
    nodes[2]!.health = 'unhealthy';
    expect(choose(nodes, { strategy: 'round_robin', clientRegion: 'eu-west' }, state)!.id).toBe('b');
  });
});
