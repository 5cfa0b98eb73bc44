import type { Migration } from '@switchyard/db';
import * as poolsAndNodes from './migrations/2026_11_23_0001_pools_and_nodes.js';
import * as nodeServerAndHostPorts from './migrations/2026_11_23_0002_node_server_and_host_ports.js';
import * as poolsLivePublicPort from './migrations/2026_11_23_0003_pools_live_public_port.js';
import * as poolDrains from './migrations/2026_12_02_0004_pool_drains.js';

// Frozen: a shipped migration is never edited; change the schema with a new file in migrations/.
// Names are the ids recorded in each database: never rename one.
// tenant_id leads every key so both tables can be distributed by tenant (Citus), and the
// pool foreign key includes it so a node and its pool always live on the same shard.
export const migrations: Record<string, Migration> = {
  '2026_11_23_0001_pools_and_nodes': poolsAndNodes,
  '2026_11_23_0002_node_server_and_host_ports': nodeServerAndHostPorts,
  '2026_11_23_0003_pools_live_public_port': poolsLivePublicPort,
  '2026_12_02_0004_pool_drains': poolDrains,
};
