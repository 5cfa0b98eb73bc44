import type { Bus } from '@switchyard/bus';
import type { NetworkMode, NodeMetrics, NodeStatus, PoolSpec, PublishedPort } from '@switchyard/contracts';
import type { ServiceContext } from '@switchyard/service-kit';
import type { SpecConfig } from './container-spec.js';
import type { DockerOps } from './docker-ops.js';
import type { HostPorts, Node, Pool } from './tables.js';

// What the manager's core needs from the world, as interfaces: main.ts hands it Docker, SQL,
// NATS and Redis; the unit tests hand it fakes.

/** The part of the service's logger the core uses. */
export type Log = Pick<ServiceContext<unknown>['log'], 'info' | 'warn'>;

/** The NATS calls of the core: events and order reports out, the load balancer's traffic in. */
export type CoreBus = Pick<Bus, 'publish' | 'request'>;

export interface HotStateEntry {
  readonly tenantId: string;
  readonly poolId: string;
  readonly nodeId: string;
  readonly status: NodeStatus;
}
/** Records a node's current status where other services read hot state; must not throw. */
export type HotState = (entry: HotStateEntry) => Promise<void>;

/** `stats:<nodeId>`: the last sample of each node, written by this service alone. */
export interface StatsStore {
  write(nodeId: string, metrics: NodeMetrics): Promise<void>;
  /** The last samples of these nodes; a node without one (or an unreachable Redis) maps to null. */
  read(nodeIds: readonly string[]): Promise<Map<string, NodeMetrics | null>>;
  forget(nodeId: string): Promise<void>;
}

export interface ManagerConfig extends SpecConfig {
  /** Network of the exit pools node.cmd.add creates. */
  readonly addedPoolNetwork: NetworkMode;
}

export interface NewPoolInput {
  tenantId: string;
  poolId: string;
  spec: PoolSpec;
  desiredNodes: number;
}

export interface NodeSlot {
  tenantId: string;
  poolId: string;
  ordinal: number;
  name: string;
}

export interface NodePatch {
  status?: NodeStatus;
  containerId?: string | null;
  ports?: PublishedPort[];
  startedAt?: Date | null;
}

export interface NodeFilter {
  /** Every tenant's when absent. */
  tenantId?: string | undefined;
  poolId?: string | undefined;
  nodeId?: string | undefined;
}

export interface AddedNode {
  tenantId: string;
  nodeId: string;
  server: string | null;
}

/** The pools and nodes tables, as the core reads and writes them (repository.ts over SQL). */
export interface Repository {
  /**
   * `exists` when this very pool is already stored (a redelivered create); `name_taken` when
   * another live pool of the tenant has the name; `public_port_taken` when another live pool,
   * of any tenant, has the publicPort.
   */
  insertPool(p: NewPoolInput): Promise<'inserted' | 'exists' | 'name_taken' | 'public_port_taken'>;
  findPool(tenantId: string, poolId: string): Promise<Pool | undefined>;
  findLivePoolByName(tenantId: string, name: string): Promise<Pool | undefined>;
  /** Live pools, of one tenant or of all. */
  listPools(tenantId?: string): Promise<Pool[]>;
  updatePoolSize(pool: Pool, spec: PoolSpec, desiredNodes: number): Promise<Pool>;
  markPoolDeleted(tenantId: string, poolId: string): Promise<void>;
  /** Every node row of a pool, removed ones included, by ordinal. */
  poolNodes(tenantId: string, poolId: string): Promise<Node[]>;
  /**
   * The live node at this ordinal, created when missing. A node removed by an earlier scale-down
   * comes back under a new id: other services forgot the old one on `node.evt.removed`.
   */
  ensureNode(slot: NodeSlot): Promise<Node>;
  /**
   * Appends a node with the caller's id at the pool's next ordinal and grows the pool to include
   * it, at once. A row removed by an earlier scale-down at that ordinal is taken over.
   */
  appendNode(pool: Pool, n: AddedNode): Promise<Node>;
  findNode(tenantId: string, nodeId: string): Promise<Node | undefined>;
  /** Live nodes (removed ones left out), narrowed by the filter. */
  listNodes(filter: NodeFilter): Promise<Node[]>;
  /** Live pools and nodes (and the deleted pools of nodes mid-delete) of one moment, for pool.req.snapshot. */
  snapshotRows(tenantId?: string): Promise<{ pools: Pool[]; nodes: Node[] }>;
  updateNode(tenantId: string, nodeId: string, patch: NodePatch): Promise<void>;
  setHostPorts(tenantId: string, nodeId: string, ports: HostPorts): Promise<void>;
  /** Every host port a live node holds, running or not. */
  hostPortsInUse(): Promise<Set<number>>;
}

export interface ManagerDeps {
  readonly repo: Repository;
  /** Stops and removals must go through intent tracking, so their `die` is not taken for a crash. */
  readonly docker: DockerOps;
  readonly bus: CoreBus;
  readonly hotState: HotState;
  readonly stats: Pick<StatsStore, 'forget'>;
  readonly log: Log;
  readonly config: ManagerConfig;
  /** A free port on the given host address, for host-network nodes. */
  readonly pickPort: (host: string) => Promise<number>;
  /** Whether the manager itself is stopping or removing this container right now. */
  readonly isExpected: (containerId: string) => boolean;
  /** How often a drain asks the load balancer whether the node still has connections. */
  readonly drainPollMs?: number;
}

/** A death Docker reported for a node's container. */
export interface Death {
  readonly tenantId: string;
  readonly nodeId: string;
  readonly containerId: string;
  readonly exitCode: number;
  readonly oomKilled: boolean;
  /** Distinguishes two deaths of one container (for de-duplication). */
  readonly when: string;
}

export interface RunningNode {
  readonly containerId: string;
  readonly node: { tenantId: string; poolId: string; nodeId: string };
}
