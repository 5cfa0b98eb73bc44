import type { Migration } from '@switchyard/db';
import * as tenantsKeysOrdersOutbox from './migrations/2026_11_23_0001_tenants_keys_orders_outbox.js';
import * as orderIdempotencyKeys from './migrations/2026_11_23_0002_order_idempotency_keys.js';
import * as speedTests from './migrations/2026_11_23_0003_speed_tests.js';
import * as activity from './migrations/2026_11_24_0004_activity.js';
import * as staleOrders from './migrations/2026_12_02_0005_stale_orders.js';
import * as proxyUsers from './migrations/2026_12_02_0006_proxy_users.js';
import * as apiKeyLifecycle from './migrations/2026_12_07_0007_api_key_lifecycle.js';
import * as idempotencyKeys from './migrations/2026_12_07_0008_idempotency_keys.js';
import * as aclPolicies from './migrations/2026_12_07_0009_acl_policies.js';
import * as tunnelActivity from './migrations/2026_12_07_0010_tunnel_activity.js';

// Frozen: a shipped migration is never edited; change the schema with a new file in migrations/.
// Names are the ids recorded in each database: never rename one.
// tenant_id leads every key of a tenant's rows so the tables can be distributed by tenant.
export const migrations: Record<string, Migration> = {
  '2026_11_23_0001_tenants_keys_orders_outbox': tenantsKeysOrdersOutbox,
  '2026_11_23_0002_order_idempotency_keys': orderIdempotencyKeys,
  '2026_11_23_0003_speed_tests': speedTests,
  '2026_11_24_0004_activity': activity,
  '2026_12_02_0005_stale_orders': staleOrders,
  '2026_12_02_0006_proxy_users': proxyUsers,
  '2026_12_07_0007_api_key_lifecycle': apiKeyLifecycle,
  '2026_12_07_0008_idempotency_keys': idempotencyKeys,
  '2026_12_07_0009_acl_policies': aclPolicies,
  '2026_12_07_0010_tunnel_activity': tunnelActivity,
};
