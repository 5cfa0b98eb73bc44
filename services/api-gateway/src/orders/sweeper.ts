import { sql, type Kysely } from '@switchyard/db';
import type { Logger } from 'pino';
import { Resync } from '@switchyard/service-kit';
import type { Database, Order } from '../tables.js';

/** Orders ended per sweep; the next sweep takes the rest. */
const BATCH = 100;

const isId = (v: unknown): v is string => typeof v === 'string' && /^[0-9a-f-]{36}$/i.test(v);

/**
 * Fails every order `accepted` or `in_progress` with no change for `staleAfterMs` — whoever was
 * to carry it out is down, lost the command, or is stuck — with the reason and a timeline entry,
 * so no order waits for ever. Work that legitimately takes longer keeps its order changing with
 * progress messages. A command still in the outbox is withdrawn, so the failed order is not
 * carried out after all; one already published may still be (the reason says so). Several
 * gateways may sweep side by side: rows are taken with SKIP LOCKED. Returns the orders failed.
 */
export async function sweepStaleOrders(db: Kysely<Database>, staleAfterMs: number): Promise<Order[]> {
  return db.transaction().execute(async (tx) => {
    const stale = await tx
      .selectFrom('orders')
      .selectAll()
      .where('status', 'in', ['accepted', 'in_progress'])
      .where('updated_at', '<', sql<Date>`now() - make_interval(secs => ${staleAfterMs / 1000})`)
      .orderBy('updated_at')
      .limit(BATCH)
      .forUpdate()
      .skipLocked()
      .execute();
    const failed: Order[] = [];
    const waited = `${Math.round(staleAfterMs / 1000)} s`;
    for (const order of stale) {
      const withdrawn = await tx
        .deleteFrom('outbox')
        .where('tenant_id', '=', order.tenant_id)
        .where('published_at', 'is', null)
        .where(sql`payload->>'orderId'`, '=', order.id)
        .executeTakeFirst();
      const reason =
        Number(withdrawn.numDeletedRows) > 0
          ? `no progress for ${waited}: the command could not be sent, and was withdrawn`
          : `no progress for ${waited}: the service that carries it out did not report; it may still carry it out later`;
      const updated = await tx
        .updateTable('orders')
        .set({ status: 'failed', reason, updated_at: new Date() })
        .where('tenant_id', '=', order.tenant_id)
        .where('id', '=', order.id)
        .returningAll()
        .executeTakeFirstOrThrow();
      const result = order.result ?? {};
      await tx
        .insertInto('activity')
        .values({
          tenant_id: order.tenant_id,
          source: `order.failed ${order.id}`,
          pool_id: isId(result['poolId']) ? result['poolId'] : null,
          node_id: isId(result['nodeId']) ? result['nodeId'] : null,
          kind: 'order_failed',
          message: `order ${order.type} failed: ${reason}`,
          details: JSON.stringify({ orderId: order.id, type: order.type, reason }),
          at: updated.updated_at,
        })
        .onConflict((oc) => oc.columns(['tenant_id', 'source']).doNothing())
        .execute();
      failed.push(updated);
    }
    return failed;
  });
}

/**
 * Sweeps at a quarter of the bound (between 250 ms and a minute), so an order is failed at
 * most a quarter late; a failed sweep (Postgres away) is simply tried at the next period.
 */
export function startOrderSweeper(deps: {
  db: Kysely<Database>;
  log: Pick<Logger, 'info' | 'warn'>;
  staleAfterMs: number;
  onShutdown: (step: () => Promise<void>) => void;
}): Resync {
  const { db, log, staleAfterMs } = deps;
  const periodMs = Math.min(60_000, Math.max(250, Math.floor(staleAfterMs / 4)));
  const sweeper: Resync = new Resync(
    async () => {
      const failed = await sweepStaleOrders(db, staleAfterMs);
      if (failed.length === BATCH) sweeper.request();
      if (failed.length) log.warn({ orders: failed.map((o) => ({ tenantId: o.tenant_id, orderId: o.id, type: o.type })) }, `failed ${failed.length} stale order(s)`);
    },
    { periodMs, onError: (err, failures) => (failures === 1 || failures % 20 === 0 ? log.warn({ err: err.message, failures }, 'could not sweep stale orders') : undefined) },
  );
  deps.onShutdown(() => sweeper.stop());
  sweeper.request();
  return sweeper;
}
