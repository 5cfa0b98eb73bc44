import { randomUUID } from 'node:crypto';
import { type Kysely, uniqueViolationOf } from '@switchyard/db';
import type { PoolSpec } from '@switchyard/contracts';
import type { AddedNode, NewPoolInput, NodeFilter, NodePatch, NodeSlot, Repository } from './ports.js';
import type { Database, HostPorts, Node, Pool } from './tables.js';

/** The database or a transaction: every function here works with either. */
export type Db = Kysely<Database>;

function violates(err: unknown, constraint: string): boolean {
  return uniqueViolationOf(err) === constraint;
}

/**
 * `exists` when this very pool is already stored (a redelivered create); `name_taken` when
 * another live pool of the tenant has the name; `public_port_taken` when another live pool,
 * of any tenant, has the publicPort.
 */
export async function insertPool(db: Db, p: NewPoolInput): Promise<'inserted' | 'exists' | 'name_taken' | 'public_port_taken'> {
  try {
    const row = await db
      .insertInto('pools')
      .values({
        tenant_id: p.tenantId,
        id: p.poolId,
        name: p.spec.name,
        kind: p.spec.kind,
        spec: JSON.stringify(p.spec),
        desired_nodes: p.desiredNodes,
        status: 'active',
      })
      .onConflict((oc) => oc.columns(['tenant_id', 'id']).doNothing())
      .returning('id')
      .executeTakeFirst();
    return row ? 'inserted' : 'exists';
  } catch (err) {
    if (violates(err, 'pools_live_name')) return 'name_taken';
    if (violates(err, 'pools_live_public_port')) return 'public_port_taken';
    throw err;
  }
}

export async function findPool(db: Db, tenantId: string, poolId: string): Promise<Pool | undefined> {
  return db.selectFrom('pools').selectAll().where('tenant_id', '=', tenantId).where('id', '=', poolId).executeTakeFirst();
}

export async function updatePoolSize(db: Db, pool: Pool, spec: PoolSpec, desiredNodes: number): Promise<Pool> {
  return db
    .updateTable('pools')
    .set({ spec: JSON.stringify(spec), desired_nodes: desiredNodes, updated_at: new Date() })
    .where('tenant_id', '=', pool.tenant_id)
    .where('id', '=', pool.id)
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function markPoolDeleted(db: Db, tenantId: string, poolId: string): Promise<void> {
  await db.updateTable('pools').set({ status: 'deleted', desired_nodes: 0, updated_at: new Date() }).where('tenant_id', '=', tenantId).where('id', '=', poolId).execute();
}

/** Every node row of a pool, removed ones included, by ordinal. */
export async function poolNodes(db: Db, tenantId: string, poolId: string): Promise<Node[]> {
  return db.selectFrom('nodes').selectAll().where('tenant_id', '=', tenantId).where('pool_id', '=', poolId).orderBy('ordinal').execute();
}

/**
 * The live node at this ordinal, created when missing. A node removed by an earlier scale-down
 * comes back under a new id: other services forgot the old one on `node.evt.removed`.
 */
export async function ensureNode(db: Db, slot: NodeSlot): Promise<Node> {
  const inserted = await db
    .insertInto('nodes')
    .values({
      tenant_id: slot.tenantId,
      id: randomUUID(),
      pool_id: slot.poolId,
      ordinal: slot.ordinal,
      name: slot.name,
      status: 'creating',
      ports: '[]',
    })
    .onConflict((oc) => oc.columns(['tenant_id', 'pool_id', 'ordinal']).doNothing())
    .returningAll()
    .executeTakeFirst();
  if (inserted) return inserted;

  const existing = await db
    .selectFrom('nodes')
    .selectAll()
    .where('tenant_id', '=', slot.tenantId)
    .where('pool_id', '=', slot.poolId)
    .where('ordinal', '=', slot.ordinal)
    .executeTakeFirstOrThrow();
  if (existing.status !== 'removed') return existing;

  const revived = await db
    .updateTable('nodes')
    .set({
      id: randomUUID(),
      name: slot.name,
      status: 'creating',
      container_id: null,
      ports: '[]',
      host_ports: '{}',
      server: null,
      started_at: null,
      updated_at: new Date(),
    })
    .where('tenant_id', '=', slot.tenantId)
    .where('id', '=', existing.id)
    .where('status', '=', 'removed')
    .returningAll()
    .executeTakeFirst();
  return revived ?? ensureNode(db, slot);
}

export async function findNode(db: Db, tenantId: string, nodeId: string): Promise<Node | undefined> {
  return db.selectFrom('nodes').selectAll().where('tenant_id', '=', tenantId).where('id', '=', nodeId).executeTakeFirst();
}

export async function updateNode(db: Db, tenantId: string, nodeId: string, patch: NodePatch): Promise<void> {
  await db
    .updateTable('nodes')
    .set({
      updated_at: new Date(),
      ...(patch.status !== undefined ? { status: patch.status } : {}),
      ...(patch.containerId !== undefined ? { container_id: patch.containerId } : {}),
      ...(patch.ports !== undefined ? { ports: JSON.stringify(patch.ports) } : {}),
      ...(patch.startedAt !== undefined ? { started_at: patch.startedAt } : {}),
    })
    .where('tenant_id', '=', tenantId)
    .where('id', '=', nodeId)
    .execute();
}

/** Live nodes (removed ones left out), narrowed by the filter. */
export async function listNodes(db: Db, filter: NodeFilter): Promise<Node[]> {
  let q = db.selectFrom('nodes').selectAll().where('status', '<>', 'removed');
  if (filter.tenantId !== undefined) q = q.where('tenant_id', '=', filter.tenantId);
  if (filter.poolId !== undefined) q = q.where('pool_id', '=', filter.poolId);
  if (filter.nodeId !== undefined) q = q.where('id', '=', filter.nodeId);
  return q.orderBy('tenant_id').orderBy('pool_id').orderBy('ordinal').execute();
}

/** Live pools, of one tenant or of all. */
export async function listPools(db: Db, tenantId?: string): Promise<Pool[]> {
  let q = db.selectFrom('pools').selectAll().where('status', '=', 'active');
  if (tenantId !== undefined) q = q.where('tenant_id', '=', tenantId);
  return q.orderBy('tenant_id').orderBy('name').execute();
}

export async function findLivePoolByName(db: Db, tenantId: string, name: string): Promise<Pool | undefined> {
  return db.selectFrom('pools').selectAll().where('tenant_id', '=', tenantId).where('name', '=', name).where('status', '=', 'active').executeTakeFirst();
}

export async function setHostPorts(db: Db, tenantId: string, nodeId: string, ports: HostPorts): Promise<void> {
  await db
    .updateTable('nodes')
    .set({ host_ports: JSON.stringify(ports), updated_at: new Date() })
    .where('tenant_id', '=', tenantId)
    .where('id', '=', nodeId)
    .execute();
}

/** Every host port a live node holds, running or not. */
export async function hostPortsInUse(db: Db): Promise<Set<number>> {
  const rows = await db.selectFrom('nodes').select('host_ports').where('status', '<>', 'removed').execute();
  return new Set(rows.flatMap((r) => Object.values(r.host_ports)));
}

/**
 * Appends a node with the caller's id at the pool's next ordinal and grows the pool to include
 * it, in one transaction: a crash in between would leave a node the next reconcile removes.
 * A row removed by an earlier scale-down at that ordinal is taken over.
 */
export async function appendNode(db: Db, pool: Pool, n: AddedNode): Promise<Node> {
  return db.transaction().execute(async (tx) => {
    const ordinal = pool.desired_nodes + 1;
    const name = `${pool.name}-${ordinal}`;
    const node = await tx
      .insertInto('nodes')
      .values({ tenant_id: n.tenantId, id: n.nodeId, pool_id: pool.id, ordinal, name, status: 'creating', ports: '[]', server: n.server })
      .onConflict((oc) =>
        oc
          .columns(['tenant_id', 'pool_id', 'ordinal'])
          .doUpdateSet({ id: n.nodeId, name, status: 'creating', container_id: null, ports: '[]', host_ports: '{}', started_at: null, server: n.server, updated_at: new Date() })
          .where('nodes.status', '=', 'removed'),
      )
      .returningAll()
      .executeTakeFirst();
    if (!node) throw new Error(`pool ${pool.name} has a live node at ordinal ${ordinal} beyond its size`);
    const spec = { ...pool.spec, nodes: { min: ordinal, max: Math.max(pool.spec.nodes.max, ordinal) } };
    await tx
      .updateTable('pools')
      .set({ desired_nodes: ordinal, spec: JSON.stringify(spec), updated_at: new Date() })
      .where('tenant_id', '=', pool.tenant_id)
      .where('id', '=', pool.id)
      .execute();
    return node;
  });
}

/**
 * Everything `pool.req.snapshot` serves, of one tenant or of all, in one read-only REPEATABLE
 * READ transaction, so the pools and nodes are of one moment: live nodes, live pools, and the
 * deleted pools of nodes still live (mid-delete), whose views need their spec.
 */
export async function snapshotRows(db: Db, tenantId?: string): Promise<{ pools: Pool[]; nodes: Node[] }> {
  return db
    .transaction()
    .setIsolationLevel('repeatable read')
    .setAccessMode('read only')
    .execute(async (tx) => {
      let nodes = tx.selectFrom('nodes').selectAll().where('status', '<>', 'removed');
      let pools = tx
        .selectFrom('pools')
        .selectAll()
        .where((eb) =>
          eb.or([
            eb('status', '=', 'active'),
            eb.exists(
              eb.selectFrom('nodes as n').select('n.id').whereRef('n.tenant_id', '=', 'pools.tenant_id').whereRef('n.pool_id', '=', 'pools.id').where('n.status', '<>', 'removed'),
            ),
          ]),
        );
      if (tenantId !== undefined) {
        nodes = nodes.where('tenant_id', '=', tenantId);
        pools = pools.where('tenant_id', '=', tenantId);
      }
      return {
        pools: await pools.orderBy('tenant_id').orderBy('name').orderBy('id').execute(),
        nodes: await nodes.orderBy('tenant_id').orderBy('pool_id').orderBy('ordinal').execute(),
      };
    });
}

/** The core's Repository over this database. */
export function sqlRepository(db: Db): Repository {
  return {
    insertPool: (p) => insertPool(db, p),
    findPool: (tenantId, poolId) => findPool(db, tenantId, poolId),
    findLivePoolByName: (tenantId, name) => findLivePoolByName(db, tenantId, name),
    listPools: (tenantId) => listPools(db, tenantId),
    updatePoolSize: (pool, spec, desiredNodes) => updatePoolSize(db, pool, spec, desiredNodes),
    markPoolDeleted: (tenantId, poolId) => markPoolDeleted(db, tenantId, poolId),
    poolNodes: (tenantId, poolId) => poolNodes(db, tenantId, poolId),
    ensureNode: (slot) => ensureNode(db, slot),
    appendNode: (pool, n) => appendNode(db, pool, n),
    findNode: (tenantId, nodeId) => findNode(db, tenantId, nodeId),
    listNodes: (filter) => listNodes(db, filter),
    snapshotRows: (tenantId) => snapshotRows(db, tenantId),
    updateNode: (tenantId, nodeId, patch) => updateNode(db, tenantId, nodeId, patch),
    setHostPorts: (tenantId, nodeId, ports) => setHostPorts(db, tenantId, nodeId, ports),
    hostPortsInUse: () => hostPortsInUse(db),
  };
}
