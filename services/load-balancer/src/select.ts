import type { BalancingStrategy, HealthStatus } from '@switchyard/contracts';

/**
 * Pure node selection: eligibility, health tiers, connection limits, geographic affinity,
 * sticky sessions and the five strategies. Nothing here touches a socket or the bus.
 */

export interface Candidate {
  readonly id: string;
  readonly region: string | null;
  readonly health: HealthStatus;
  readonly score: number;
  readonly latencyMs: number | null;
  /** Connections this process has open to the node right now. */
  readonly active: number;
  readonly softLimit: number | undefined;
  readonly hardLimit: number | undefined;
  /**
   * Put to sleep: its port is caught by the socket activator, which holds the connection
   * while it wakes the node. Chosen only when no awake node may take the connection.
   */
  readonly asleep?: boolean;
}

export interface Choice {
  readonly strategy: BalancingStrategy;
  /** Hash key of a sticky pool (client address or session id); undefined when not sticky. */
  readonly stickyKey?: string | undefined;
  /** The client's region when the pool prefers nodes of the client's region. */
  readonly clientRegion?: string | undefined;
  /** Nodes already tried for this connection. */
  readonly exclude?: ReadonlySet<string> | undefined;
}

/** What a strategy keeps between picks: the round-robin cursor and a random source. */
export interface PickState {
  cursor: number;
  random(): number;
}

export function newPickState(random: () => number = Math.random): PickState {
  return { cursor: 0, random };
}

/**
 * Healthy nodes first; `unknown` nodes only when none is healthy; sleeping nodes only when no
 * awake node may take it (the connection wakes one; their health, marked down when they were
 * stopped, does not count); unhealthy never; a node at its hard limit never.
 */
function healthTier(nodes: readonly Candidate[], exclude?: ReadonlySet<string>): Candidate[] {
  const healthy: Candidate[] = [];
  const unknown: Candidate[] = [];
  const asleep: Candidate[] = [];
  for (const n of nodes) {
    if (exclude?.has(n.id)) continue;
    if (n.hardLimit !== undefined && n.active >= n.hardLimit) continue;
    if (n.asleep) asleep.push(n);
    else if (n.health !== 'unhealthy') (n.health === 'healthy' ? healthy : unknown).push(n);
  }
  if (healthy.length > 0) return healthy;
  return unknown.length > 0 ? unknown : asleep;
}

/** A node over its soft limit only if none is under it. */
function underSoftLimit(tier: Candidate[]): Candidate[] {
  const under = tier.filter((n) => n.softLimit === undefined || n.active < n.softLimit);
  return under.length > 0 ? under : tier;
}

// FNV-1a with a final avalanche: cheap, and good enough to spread keys over a few nodes.
function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Rendezvous (highest random weight) hashing over the pool's members: a key keeps its node
 * while that node stays, and only the keys of a node that leaves move.
 */
export function rendezvous<T extends { readonly id: string }>(members: readonly T[], key: string): T | undefined {
  let best: T | undefined;
  let bestScore = -1;
  for (const m of members) {
    const s = hash32(`${key}\u0000${m.id}`);
    if (s > bestScore || (s === bestScore && best !== undefined && m.id < best.id)) {
      best = m;
      bestScore = s;
    }
  }
  return best;
}

const DEFAULT_LATENCY_MS = 100;

function leastActive(nodes: readonly Candidate[], state: PickState, advance: boolean): Candidate {
  // Start at the cursor so ties rotate instead of always going to the first node.
  const start = state.cursor % nodes.length;
  let best = nodes[start]!;
  for (let i = 1; i < nodes.length; i++) {
    const n = nodes[(start + i) % nodes.length]!;
    if (n.active < best.active) best = n;
  }
  if (advance) state.cursor++;
  return best;
}

function byStrategy(nodes: readonly Candidate[], strategy: BalancingStrategy, state: PickState, advance = true): Candidate | undefined {
  if (nodes.length === 0) return undefined;
  if (nodes.length === 1) return nodes[0];
  switch (strategy) {
    case 'round_robin': {
      const n = nodes[state.cursor % nodes.length]!;
      if (advance) state.cursor++;
      return n;
    }
    case 'least_connections':
      return leastActive(nodes, state, advance);
    case 'random': {
      // Power of two choices: two distinct random nodes, the one with fewer connections.
      const i = Math.floor(state.random() * nodes.length);
      let j = Math.floor(state.random() * (nodes.length - 1));
      if (j >= i) j++;
      const a = nodes[i]!;
      const b = nodes[j]!;
      return b.active < a.active ? b : a;
    }
    case 'weighted_latency': {
      // Weight 1/latency: a node twice as fast gets twice the connections.
      const known = nodes.filter((n) => n.latencyMs !== null);
      const fallback = known.length ? known.reduce((s, n) => s + n.latencyMs!, 0) / known.length : DEFAULT_LATENCY_MS;
      let total = 0;
      const weights = nodes.map((n) => {
        const w = 1 / Math.max(0.1, n.latencyMs ?? fallback);
        total += w;
        return w;
      });
      let r = state.random() * total;
      for (let k = 0; k < nodes.length; k++) {
        r -= weights[k]!;
        if (r < 0) return nodes[k];
      }
      return nodes[nodes.length - 1];
    }
    case 'health_score': {
      const top = nodes.reduce((m, n) => Math.max(m, n.score), 0);
      return leastActive(
        nodes.filter((n) => n.score === top),
        state,
        advance,
      );
    }
  }
}

/**
 * The node for the next connection, or undefined when none may take it. `members` is every
 * running, non-draining node of the candidate pools, in a stable order.
 */
export function choose(members: readonly Candidate[], choice: Choice, state: PickState, advance = true): Candidate | undefined {
  const tier = healthTier(members, choice.exclude);
  if (tier.length === 0) return undefined;
  if (choice.stickyKey !== undefined) {
    const owner = rendezvous(members, choice.stickyKey);
    // The session keeps its node while the node may take connections (a soft limit does not
    // break a session); otherwise the strategy decides.
    if (owner && tier.includes(owner)) return owner;
  }
  const pool = underSoftLimit(tier);
  let preferred = pool;
  if (choice.clientRegion !== undefined) {
    const local = pool.filter((n) => n.region === choice.clientRegion);
    if (local.length > 0) preferred = local;
  }
  return byStrategy(preferred, choice.strategy, state, advance);
}
