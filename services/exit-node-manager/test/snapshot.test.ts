import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SnapshotPages, requestPoolSnapshot, type SkippedRow } from '@switchyard/service-kit';
import type { StatsStore } from '../src/ports.js';
import { reportSkippedRows, snapshotViews } from '../src/views.js';
import { exitPool, memoryRepository, TENANT } from './core-fakes.js';

const noStats: StatsStore = {
  write: async () => undefined,
  read: async (ids) => new Map(ids.map((id) => [id, null])),
  forget: async () => undefined,
};

async function seeded() {
  const repo = memoryRepository();
  const add = async (tenantId: string, name: string) => {
    const poolId = randomUUID();
    await repo.insertPool({ tenantId, poolId, spec: exitPool(name, 1), desiredNodes: 1 });
    const node = await repo.ensureNode({ tenantId, poolId, ordinal: 1, name: `${name}-1` });
    return { poolId, nodeId: node.id };
  };
  return { repo, add };
}

describe('the snapshot exit-node-manager serves', () => {
  it("serves every other tenant's pools when one pool row is bad, and reports the bad one", async () => {
    const { repo, add } = await seeded();
    const other = randomUUID();
    const good = await add(other, 'tokyo');
    const bad = await add(TENANT, 'broken');
    // A row as an old appendNode left it: nodes.min beyond MAX_POOL_NODES.
    repo.pools.get(`${TENANT}/${bad.poolId}`)!.spec.nodes.min = 500;
    const skipped: SkippedRow[] = [];
    const pages = new SnapshotPages({ pageBytes: () => 1024 * 1024, onSkip: (row) => skipped.push(row) });
    const got = await requestPoolSnapshot((p) => pages.serve(p, () => snapshotViews(repo, noStats, p.tenantId, (row) => skipped.push(row))));
    expect(got.pools.map((p) => p.poolId)).toEqual([good.poolId]);
    expect(got.nodes.map((n) => n.nodeId)).toEqual([good.nodeId]);
    expect(got.skipped).toBe(2);
    expect(skipped).toEqual([{ kind: 'pool', tenantId: TENANT, poolId: bad.poolId, nodes: 1, reason: expect.stringContaining('spec.nodes.min') }]);
  });

  it("carries a pool's tags to the load balancer and the activator, which judge ACL policies by them", async () => {
    const { repo, add } = await seeded();
    const tagged = await add(TENANT, 'tagged');
    repo.pools.get(`${TENANT}/${tagged.poolId}`)!.spec.tags = ['tag:exit', 'tag:jp'];
    const pages = new SnapshotPages({ pageBytes: () => 1024 * 1024, onSkip: () => undefined });
    const got = await requestPoolSnapshot((p) => pages.serve(p, () => snapshotViews(repo, noStats, p.tenantId, () => undefined)));
    expect(got.skipped).toBe(0);
    expect(got.pools.map((p) => p.spec.tags)).toEqual([['tag:exit', 'tag:jp']]);
  });

  it('leaves out a node whose pool spec cannot make a view, and serves the nodes of a pool mid-delete', async () => {
    const { repo, add } = await seeded();
    const odd = await add(TENANT, 'odd');
    const going = await add(TENANT, 'going');
    (repo.pools.get(`${TENANT}/${odd.poolId}`)!.spec as { country: unknown }).country = 42;
    await repo.markPoolDeleted(TENANT, going.poolId);
    const skipped: SkippedRow[] = [];
    const views = await snapshotViews(repo, noStats, TENANT, (row) => skipped.push(row));
    expect(skipped).toMatchObject([{ kind: 'node', nodeId: odd.nodeId, reason: expect.stringContaining('has no view') }]);
    expect(views.pools.map((p) => p.poolId)).toEqual([odd.poolId]);
    expect(views.nodes.map((n) => n.nodeId)).toEqual([going.nodeId]);
  });
});

describe('reportSkippedRows', () => {
  const row: SkippedRow = { kind: 'pool', tenantId: TENANT, poolId: randomUUID(), nodes: 2, reason: 'fails its schema: spec.nodes.min: must be <= 100' };

  it('dead-letters a row once, naming it and why, without its spec', async () => {
    const letters: Array<{ subject: string; body: unknown; reason: string; msgId: string | undefined }> = [];
    const report = reportSkippedRows(async (subject, data, reason, _h, msgId) => void letters.push({ subject, body: JSON.parse(Buffer.from(data).toString()), reason, msgId }), {
      info: () => undefined,
      warn: () => undefined,
    });
    report(row);
    report(row);
    await Promise.resolve();
    expect(letters).toEqual([
      {
        subject: 'pool.req.snapshot',
        body: { kind: 'pool', tenantId: TENANT, poolId: row.poolId },
        reason: `pool ${row.poolId} (with its 2 nodes) of tenant ${TENANT} left out of pool.req.snapshot: fails its schema: spec.nodes.min: must be <= 100`,
        msgId: expect.stringMatching(/^snapshot-skip-[0-9a-f]{64}$/),
      },
    ]);
    // A new reason is news.
    report({ ...row, reason: 'fails its schema: spec.kind: unknown' });
    expect(letters).toHaveLength(2);
  });

  it('tries again on the next cut when the dead letter could not be published', async () => {
    let fail = true;
    let sent = 0;
    const report = reportSkippedRows(
      async () => {
        if (fail) throw new Error('NATS away');
        sent++;
      },
      { info: () => undefined, warn: () => undefined },
    );
    report(row);
    await new Promise((resolve) => setImmediate(resolve));
    fail = false;
    report(row);
    await new Promise((resolve) => setImmediate(resolve));
    expect(sent).toBe(1);
  });
});
