import type { Payload, ReplyOf } from '@switchyard/contracts';
import type { EventHandlers } from '@switchyard/service-kit';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { TrafficCounters } from './counters.js';
import type { RoutingTable } from './table.js';

export interface TableDeps {
  readonly table: RoutingTable;
  readonly counters: TrafficCounters;
  readonly redis: Redis;
  readonly log: Pick<Logger, 'debug' | 'warn'>;
}

/**
 * Events keep the table live between rebuilds; core subscriptions also receive the
 * JetStream-published ones, and the snapshot repairs anything missed.
 */
export function tableEvents({ table, counters, redis, log }: TableDeps) {
  return {
    'pool.evt.changed': async (p) => table.setPool(p),
    'pool.evt.deleted': async (p) => table.deletePool(p.poolId),
    'node.evt.created': async (p) => table.nodeCreated(p),
    'node.evt.started': async (p) => table.nodeStarted(p),
    'node.evt.stopped': async (p) => table.nodeDown(p.nodeId, p.reason === 'sleep' ? 'sleeping' : 'stopped'),
    'node.evt.died': async (p) => table.nodeDown(p.nodeId, 'error'),
    'node.evt.removed': async (p) => {
      table.nodeRemoved(p.nodeId);
      await counters.forget(redis, p.nodeId).catch((err: Error) => log.warn({ nodeId: p.nodeId, err: err.message }, 'traffic counters of a removed node not deleted'));
    },
    'node.evt.draining': async (p) => table.nodeDraining(p.nodeId),
    'health.evt.changed': async (p) => table.healthChanged(p),
  } satisfies EventHandlers;
}

export interface RebuildDeps {
  readonly table: RoutingTable;
  /** pool.req.snapshot; throws when exit-node-manager does not answer in time. */
  readonly snapshot: () => Promise<ReplyOf<'pool.req.snapshot'>>;
  /** health.req.status; throws when the health monitor does not answer in time. */
  readonly health: (p: Payload<'health.req.status'>) => Promise<ReplyOf<'health.req.status'>>;
  readonly log: Pick<Logger, 'debug'>;
}

/** Replaces the table from exit-node-manager's snapshot and the health monitor's status. */
export function rebuildTable({ table, log, ...ask }: RebuildDeps): () => Promise<void> {
  return async () => {
    // Noted before asking: events newer than this (less the trust margin) beat the reply.
    const requestedAt = Date.now();
    const snapshot = await ask.snapshot();
    // Without the health monitor every node stays "unknown", which still routes.
    const health = await ask.health({}).catch(() => undefined);
    table.replace(snapshot, health?.nodes, requestedAt);
    log.debug({ pools: snapshot.pools.length, nodes: snapshot.nodes.length, health: !!health }, 'routing table rebuilt');
  };
}
