import type { NodeMetrics, NodeView, Payload, PoolView, ReplyOf } from '@switchyard/contracts';
import { isNotFound } from '@switchyard/docker';
import { DockerOpError, type DockerOps } from './docker-ops.js';
import { demuxLogLines, newestLines } from './log-frames.js';
import type { Repository, StatsStore } from './ports.js';
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

/** `pool.req.snapshot`: every live pool and node, of one tenant or of all. */
export async function poolSnapshot(repo: ViewRepository, stats: StatsStore, p: Payload<'pool.req.snapshot'>): Promise<ReplyOf<'pool.req.snapshot'>> {
  const [pools, nodes] = await Promise.all([repo.listPools(p.tenantId), repo.listNodes({ tenantId: p.tenantId })]);
  return { pools: pools.map(toPoolView), nodes: await viewsOf(repo, stats, nodes, pools) };
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
  const logs = newestLines(demuxLogLines(body), p.lines);
  return { logs, lines: logs.length };
}
