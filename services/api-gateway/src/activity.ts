import type { ConsumerHandlers } from '@switchyard/bus';
import type { ActivityEntry, ActivityKind, Payload } from '@switchyard/contracts';
import { sql, type Kysely } from '@switchyard/db';
import { activityOf, type ActivityDraft, type ActivitySubject } from './activity-entries.js';
import type { Activity, Database } from './tables.js';

/** Stores an entry once, however often its event is delivered. */
async function recordActivity(db: Kysely<Database>, d: ActivityDraft): Promise<void> {
  await db
    .insertInto('activity')
    .values({
      tenant_id: d.tenantId,
      source: d.source,
      pool_id: d.poolId,
      node_id: d.nodeId,
      kind: d.kind,
      message: d.message,
      details: JSON.stringify(d.details),
      at: d.at,
    })
    .onConflict((oc) => oc.columns(['tenant_id', 'source']).doNothing())
    .execute();
}

export interface ActivityQuery {
  poolId?: string | undefined;
  nodeId?: string | undefined;
  kinds?: readonly ActivityKind[] | undefined;
  limit: number;
  /** An entry id: the page starts after it, in the timeline's order. */
  before?: string | undefined;
}

/**
 * A page of the tenant's timeline, newest first by event time (ties by id), so events that
 * arrive late or are replayed after an outage still sit where they happened. `next` is the
 * id to pass as `before` for the following page; 'unknown_cursor' when `before` is not an
 * entry of this tenant.
 */
export async function listActivity(db: Kysely<Database>, tenantId: string, q: ActivityQuery): Promise<{ items: Activity[]; next: string | null } | 'unknown_cursor'> {
  let cursor: { at: Date; seq: string } | undefined;
  if (q.before) {
    cursor = await db.selectFrom('activity').select(['at', 'seq']).where('tenant_id', '=', tenantId).where('seq', '=', q.before).executeTakeFirst();
    if (!cursor) return 'unknown_cursor';
  }
  let query = db.selectFrom('activity').selectAll().where('tenant_id', '=', tenantId);
  if (q.poolId) query = query.where('pool_id', '=', q.poolId);
  if (q.nodeId) query = query.where('node_id', '=', q.nodeId);
  if (q.kinds?.length) query = query.where('kind', 'in', q.kinds);
  if (cursor) query = query.where(sql<boolean>`(at, seq) < (${cursor.at}::timestamptz, ${cursor.seq}::bigint)`);
  // One more than asked tells whether there is a next page.
  const rows = await query
    .orderBy('at', 'desc')
    .orderBy('seq', 'desc')
    .limit(q.limit + 1)
    .execute();
  const items = rows.slice(0, q.limit);
  return { items, next: rows.length > q.limit ? items[items.length - 1]!.seq : null };
}

export function toActivityEntry(a: Activity): ActivityEntry {
  return {
    id: a.seq,
    tenantId: a.tenant_id,
    poolId: a.pool_id,
    nodeId: a.node_id,
    kind: a.kind,
    message: a.message,
    details: a.details,
    at: a.at.toISOString(),
  };
}

/** The handlers of the gateway's activity consumers (one per event domain). */
export function activityHandlers(db: Kysely<Database>) {
  const record =
    <S extends ActivitySubject>(subject: S) =>
    async (e: Payload<S>) => {
      const draft = (activityOf[subject] as (e: Payload<S>) => ActivityDraft | null)(e);
      if (draft) await recordActivity(db, draft);
    };
  const sleep: ConsumerHandlers<'apiGatewayActivitySleep'> = {
    'sleep.evt.slept': record('sleep.evt.slept'),
    'sleep.evt.policy': record('sleep.evt.policy'),
  };
  const activator: ConsumerHandlers<'apiGatewayActivityActivator'> = {
    'activator.evt.woke': record('activator.evt.woke'),
    'activator.evt.failed': record('activator.evt.failed'),
  };
  const nodes: ConsumerHandlers<'apiGatewayActivityNodes'> = {
    'node.evt.created': record('node.evt.created'),
    'node.evt.started': record('node.evt.started'),
    'node.evt.stopped': record('node.evt.stopped'),
    'node.evt.died': record('node.evt.died'),
    'node.evt.removed': record('node.evt.removed'),
    'node.evt.draining': record('node.evt.draining'),
    'node.evt.health': record('node.evt.health'),
  };
  const tunnels: ConsumerHandlers<'apiGatewayActivityTunnels'> = {
    'tunnel.evt.opened': record('tunnel.evt.opened'),
    'tunnel.evt.closed': record('tunnel.evt.closed'),
    'tunnel.evt.up': record('tunnel.evt.up'),
    'tunnel.evt.down': record('tunnel.evt.down'),
    'tunnel.evt.failover': record('tunnel.evt.failover'),
    'tunnel.evt.rotated': record('tunnel.evt.rotated'),
    'tunnel.evt.expired': record('tunnel.evt.expired'),
  };
  return { sleep, activator, nodes, tunnels };
}
