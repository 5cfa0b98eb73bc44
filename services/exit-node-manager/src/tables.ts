import type { ColumnType, CreatedAt, Generated, Json, Selectable, UpdatedAt } from '@switchyard/db';
import type { NodeStatus, PoolKind, PoolSpec, PublishedPort } from '@switchyard/contracts';

type PoolStatus = 'active' | 'deleted';

interface PoolTable {
  tenant_id: string;
  id: string;
  name: string;
  kind: PoolKind;
  spec: Json<PoolSpec>;
  desired_nodes: number;
  status: PoolStatus;
  created_at: CreatedAt;
  updated_at: UpdatedAt;
}

export type HostPorts = Record<string, number>;

interface NodeTable {
  tenant_id: string;
  id: string;
  pool_id: string;
  /** 1-based position in the pool; a pool scaled to n keeps ordinals 1..n. */
  ordinal: number;
  name: string;
  container_id: string | null;
  status: NodeStatus;
  ports: Json<PublishedPort[]>;
  /** The VPN server this node was asked to use (node.cmd.add), passed as SERVER_HOSTNAMES. */
  server: ColumnType<string | null, string | null | undefined, string | null>;
  /** Host-network nodes: port name → the host port it listens on, stable for the node's life. */
  host_ports: ColumnType<HostPorts, string | undefined, string>;
  started_at: Date | null;
  created_at: CreatedAt;
  updated_at: UpdatedAt;
}

/** A drain running in the background (pool-drains.ts): what is left to do after a crash. */
interface PoolDrainTable {
  tenant_id: string;
  id: string;
  pool_id: string;
  kind: 'scale' | 'delete';
  order_id: string | null;
  reason: string;
  deadline: Date;
  keep_volumes: Generated<boolean>;
  created_at: CreatedAt;
}

export interface Database {
  pools: PoolTable;
  nodes: NodeTable;
  pool_drains: PoolDrainTable;
}

export type Pool = Selectable<PoolTable>;
export type Node = Selectable<NodeTable>;
export type PoolDrainRow = Selectable<PoolDrainTable>;
