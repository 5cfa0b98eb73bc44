import type { Kysely } from '@switchyard/db';
import type { ConsumerMap } from '@switchyard/service-kit';
import { activityHandlers } from './activity.js';
import { orderEventHandlers } from './order-events.js';
import { speedTestHandlers } from './speed-tests.js';
import type { Database } from './tables.js';

/** Everything the gateway hears: order events, speed-test results and the activity timeline. */
export function gatewayConsumers(db: Kysely<Database>): ConsumerMap {
  // Entries are ordered by event time when read, so handling a domain's events side by side is fine.
  const activity = activityHandlers(db);
  return {
    apiGatewayOrders: { handlers: orderEventHandlers(db), concurrency: 8 },
    apiGatewaySpeedTests: { handlers: speedTestHandlers(db), concurrency: 4 },
    apiGatewayActivitySleep: { handlers: activity.sleep, concurrency: 4 },
    apiGatewayActivityActivator: { handlers: activity.activator, concurrency: 4 },
    apiGatewayActivityNodes: { handlers: activity.nodes, concurrency: 8 },
    apiGatewayActivityTunnels: { handlers: activity.tunnels, concurrency: 4 },
  };
}
