import { setTimeout as sleep } from 'node:timers/promises';
import type { CoreBus } from './ports.js';
import type { Node, Pool } from './tables.js';

const now = () => new Date().toISOString();

const DEFAULT_DRAIN_SEC = 30;
const DEFAULT_POLL_MS = 250;
// The load balancer answers from memory; a slow answer is as good as none.
const TRAFFIC_TIMEOUT_MS = 500;

export interface DrainDeps {
  readonly bus: CoreBus;
  /** How often the load balancer is asked whether a node still has connections. */
  readonly pollMs?: number | undefined;
}

export interface DrainOptions {
  /** When to stop waiting (epoch ms); the pool's drainSec from now unless said. */
  readonly deadline?: number;
  /** Stops the wait early (shutdown): the drain then rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

/** The pool's drainSec, in ms. */
export const drainMsOf = (pool: Pool) => (pool.spec.drainSec ?? DEFAULT_DRAIN_SEC) * 1000;

/**
 * Announces that the nodes take no new connections (node.evt.draining), then waits until the
 * load balancer reports none open on them, or the deadline passes.
 */
export type Drain = (pool: Pool, nodes: readonly Node[], reason: string, opts?: DrainOptions) => Promise<void>;

export function createDrain(deps: DrainDeps): Drain {
  const { bus } = deps;
  const pollMs = deps.pollMs ?? DEFAULT_POLL_MS;

  async function activeConnections(node: Node): Promise<number> {
    try {
      const reply = await bus.request('lb.req.traffic', { tenantId: node.tenant_id, nodeIds: [node.id] }, { timeoutMs: TRAFFIC_TIMEOUT_MS });
      return reply.nodes.find((n) => n.nodeId === node.id)?.activeConnections ?? 0;
    } catch {
      // No load balancer (or none answering): nothing routes to the node, so nothing to wait for.
      return 0;
    }
  }

  /** Asks until the node has no connection left, at most until `deadline` (and so at most `polls` times). */
  async function drained(node: Node, deadline: number, polls: number, signal?: AbortSignal): Promise<void> {
    for (let poll = 0; poll < polls; poll++) {
      signal?.throwIfAborted();
      if ((await activeConnections(node)) === 0) return;
      const left = deadline - Date.now();
      if (left <= 0) return;
      await sleep(Math.min(pollMs, left), undefined, signal ? { signal } : {});
    }
  }

  return async (pool, nodes, reason, opts = {}) => {
    const running = nodes.filter((n) => n.status === 'running');
    if (running.length === 0) return;
    for (const node of running) {
      await bus.publish('node.evt.draining', { tenantId: node.tenant_id, poolId: node.pool_id, nodeId: node.id, at: now(), reason }, { msgId: `node.evt.draining:${node.id}` });
    }
    const deadline = opts.deadline ?? Date.now() + drainMsOf(pool);
    const polls = Math.ceil(Math.max(0, deadline - Date.now()) / pollMs) + 1;
    await Promise.all(running.map((node) => drained(node, deadline, polls, opts.signal)));
  };
}
