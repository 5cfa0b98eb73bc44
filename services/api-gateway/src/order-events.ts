import type { ConsumerHandlers } from '@switchyard/bus';
import type { Kysely } from '@switchyard/db';
import { recordOrderEvent } from './orders/repository.js';
import type { Database } from './tables.js';

/** The api-gateway owns orders: their status follows the events of whoever carries them out. */
export function orderEventHandlers(db: Kysely<Database>): ConsumerHandlers<'apiGatewayOrders'> {
  return {
    'order.evt.progress': async (e) => recordOrderEvent(db, e.tenantId, e.orderId, { status: 'in_progress' }),
    'order.evt.fulfilled': async (e) => recordOrderEvent(db, e.tenantId, e.orderId, { status: 'fulfilled', result: e.result }),
    'order.evt.failed': async (e) => recordOrderEvent(db, e.tenantId, e.orderId, { status: 'failed', reason: e.reason }),
  };
}
