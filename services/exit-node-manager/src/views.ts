import { createHash } from 'node:crypto';
import type { Bus } from '@switchyard/bus';
import type { NodeMetrics, NodeView, Payload, PoolView, ReplyOf } from '@switchyard/contracts';
import { isNotFound } from '@switchyard/docker';
import type { PoolSnapshot, SkippedRow } from '@switchyard/service-kit';
import { DockerOpError, type DockerOps } from './docker-ops.js';
import { demuxLogLines } from './log-frames.js';
import type { Log, Repository, StatsStore } from './ports.js';
import type { Node, Pool } from './tables.js';

type ViewRepository = Pick<Repository, 'findPool' | 'findNode' | 'listNodes' | 'listPools'>;

export function toNodeView(node: Node, pool: Pool, stats: NodeMetrics | null): NodeView {
  const { spec } = pool;
  return {
    tenantId: node.tenant_id,
    poolId: node.pool_id,
    nodeId: node.id,
    name: node.name,
    kind: spec.kind,
    status: node.status,
    country: spec.country ? spec.country.toUpperCase() : null,
    region: spec.region ?? null,
    city: spec.city ?? null,
    server: node.server,
    containerId: node.container_id,
    ports: node.ports,
    startedAt: node.started_at ? node.started_at.toISOString() : null,
    stats,
  };
}

export function toPoolView(pool: Pool): PoolView {
  return { tenantId: pool.tenant_id, poolId: pool.id, name: pool.name, spec: pool.spec };
}

async function viewsOf(repo: ViewRepository, stats: StatsStore, nodes: Node[], pools: Pool[]): Promise<NodeView[]> {
  const poolsById = new Map(pools.map((p) => [`${p.tenant_id}/${p.id}`, p]));
  const samples = await stats.read(nodes.map((n) => n.id));
  const views: NodeView[] = [];
  for (const node of nodes) {
    // A live node of a deleted pool only exists mid-delete; it is on its way out.
    const pool = poolsById.get(`${node.tenant_id}/${node.pool_id}`) ?? (await repo.findPool(node.tenant_id, node.pool_id));
    if (pool) views.push(toNodeView(node, pool, samples.get(node.id) ?? null));
  }
  return views;
}

/** `node.req.list`: the tenant's live nodes, optionally of one pool or one node. */
export async function listNodeViews(repo: ViewRepository, stats: StatsStore, p: Payload<'node.req.list'>): Promise<ReplyOf<'node.req.list'>> {
  const nodes = await repo.listNodes({ tenantId: p.tenantId, poolId: p.poolId, nodeId: p.nodeId });
  const pools = nodes.length ? await repo.listPools(p.tenantId) : [];
  return { nodes: await viewsOf(repo, stats, nodes, pools) };
}

/**
 * `pool.req.snapshot`: every live pool and node, of one tenant or of all, as views of one read;
 * SnapshotPages checks each row and cuts them into pages. A node whose view cannot even be
 * made (a spec that is not one) is left out here and told to `onSkip`.
 */
export async function snapshotViews(
  repo: Pick<Repository, 'snapshotRows'>,
  stats: StatsStore,
  tenantId: string | undefined,
  onSkip: (row: SkippedRow) => void,
): Promise<PoolSnapshot> {
  const { pools, nodes } = await repo.snapshotRows(tenantId);
  const poolsByKey = new Map(pools.map((p) => [`${p.tenant_id}/${p.id}`, p]));
  const samples = await stats.read(nodes.map((n) => n.id));
  const views: NodeView[] = [];
  for (const node of nodes) {
    const pool = poolsByKey.get(`${node.tenant_id}/${node.pool_id}`);
    if (!pool) continue;
    try {
      views.push(toNodeView(node, pool, samples.get(node.id) ?? null));
    } catch (err) {
      onSkip({ kind: 'node', tenantId: node.tenant_id, poolId: node.pool_id, nodeId: node.id, reason: `has no view: ${(err as Error).message}` });
    }
  }
  return { pools: pools.filter((p) => p.status === 'active').map(toPoolView), nodes: views };
}

/**
 * Reports each row left out of a snapshot once per process (again when its reason changes): a
 * warning, and a dead letter on `dlq.pool.req.snapshot` whose body names the row and whose
 * reason header says why. The body never holds the spec: its secretEnv stays out of the DLQ.
 */
export function reportSkippedRows(deadLetter: Bus['deadLetter'], log: Log, remember = 10_000): (row: SkippedRow) => void {
  const told = new Set<string>();
  return (row) => {
    const what = row.kind === 'pool' ? `pool ${row.poolId}${row.nodes ? ` (with its ${row.nodes} nodes)` : ''}` : `node ${row.nodeId} of pool ${row.poolId}`;
    const reason = `${what} of tenant ${row.tenantId} left out of pool.req.snapshot: ${row.reason}`;
    const key = createHash('sha256').update(reason).digest('hex');
    if (told.has(key)) return;
    if (told.size >= remember) told.clear();
    told.add(key);
    log.warn({ kind: row.kind, tenantId: row.tenantId, poolId: row.poolId, nodeId: row.nodeId, reason: row.reason }, 'a row is left out of pool.req.snapshot');
    const body = JSON.stringify({ kind: row.kind, tenantId: row.tenantId, poolId: row.poolId, ...(row.nodeId ? { nodeId: row.nodeId } : {}) });
    // The message id lets several managers, or a restarted one, report a row once per window.
    deadLetter('pool.req.snapshot', Buffer.from(body), reason, undefined, `snapshot-skip-${key}`).catch((err: Error) => {
      told.delete(key);
      log.warn({ err: err.message, poolId: row.poolId }, 'a row left out of pool.req.snapshot could not be dead-lettered');
    });
  };
}

/** `node.req.logs`: the last lines of the node's container, both streams; null for a node the tenant does not have. */
export async function nodeLogs(repo: ViewRepository, docker: DockerOps, p: Payload<'node.req.logs'>): Promise<ReplyOf<'node.req.logs'>> {
  const node = await repo.findNode(p.tenantId, p.nodeId);
  if (!node || node.status === 'removed') return { logs: null, lines: 0 };
  if (!node.container_id) return { logs: [], lines: 0 };
  let body: Buffer;
  try {
    body = await docker.logs(node.container_id, p.lines);
  } catch (err) {
    // Removed behind the manager's back: the node exists and has nothing to show.
    if (err instanceof DockerOpError && isNotFound(err.cause)) return { logs: [], lines: 0 };
    throw err;
  }
  const logs = demuxLogLines(body).slice(-p.lines);
  return { logs, lines: logs.length };
}
