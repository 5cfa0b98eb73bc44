import type { Migration } from '@switchyard/db';
import * as tunnels from './migrations/2026_12_07_0001_tunnels.js';
import * as tunnelHosts from './migrations/2026_12_08_0001_tunnel_hosts.js';
import * as poolTunnels from './migrations/2026_12_08_0002_pool_tunnels.js';

// Frozen: a shipped migration is never edited; change the schema with a new file in migrations/.
// Names are the ids recorded in each database: never rename one. tenant_id leads every key so
// the tables can be distributed by tenant (Citus).
export const migrations: Record<string, Migration> = {
  '2026_12_07_0001_tunnels': tunnels,
  '2026_12_08_0001_tunnel_hosts': tunnelHosts,
  '2026_12_08_0002_pool_tunnels': poolTunnels,
};
