import type { NodeView, Payload, PoolView, ReplyOf } from '@switchyard/contracts';

// `pool.req.snapshot` in pages, the requester's end (the owner's is snapshot-pages.ts). The
// owner serves every page from one read, so an assembled snapshot is exactly what one read
// saw: nothing of two moments mixed. The requester fetches the pages in order and starts over
// when the cut is gone; a follower that noted the time before asking keeps trusting the
// events since then, however long the pages take.

export type SnapshotRequest = Payload<'pool.req.snapshot'>;
export type SnapshotPage = ReplyOf<'pool.req.snapshot'>;

export interface PoolSnapshot {
  readonly pools: PoolView[];
  readonly nodes: NodeView[];
}

export interface FetchedSnapshot extends PoolSnapshot {
  /** Pages the cut was served in. */
  readonly pages: number;
  /** Rows the owner left out because they fail their schema. */
  readonly skipped: number;
}

export interface FetchSnapshotOptions {
  /** Fetches started over because the cut expired between pages before giving up; 3 unless said. */
  readonly attempts?: number;
  /** A bound on the pages of one cut; 10,000 unless said. */
  readonly maxPages?: number;
}

/** The cut id and page index of a cursor (`<32 hex>.<index>`). */
export function parseCursor(cursor: string): { cut: string; index: number } {
  const dot = cursor.indexOf('.');
  return { cut: cursor.slice(0, dot), index: Number(cursor.slice(dot + 1)) };
}

/** The owner kept answering `expired` (cuts released, or too busy to start one): worth asking again later. */
export class SnapshotExpired extends Error {
  constructor(attempts: number) {
    super(`pool.req.snapshot: the snapshot expired while its pages were fetched, ${attempts} times`);
  }
}

/**
 * Fetches a whole snapshot, page after page, through `ask` (one `pool.req.snapshot` request,
 * with the caller's timeout). Throws when a page does not come, when a page belongs to another
 * cut, or when the cut expired `attempts` times in a row.
 */
export async function requestPoolSnapshot(
  ask: (p: SnapshotRequest) => Promise<SnapshotPage>,
  p: { tenantId?: string | undefined } = {},
  opts: FetchSnapshotOptions = {},
): Promise<FetchedSnapshot> {
  const attempts = opts.attempts ?? 3;
  const maxPages = opts.maxPages ?? 10_000;
  const base: SnapshotRequest = p.tenantId !== undefined ? { tenantId: p.tenantId } : {};
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const first = await ask(base);
    if (first.expired) continue;
    const pools = first.pools.slice();
    const nodes = first.nodes.slice();
    const cut = first.next === undefined ? undefined : parseCursor(first.next).cut;
    let next = first.next;
    let pages = 1;
    let expired = false;
    while (next !== undefined) {
      if (pages >= maxPages) throw new Error(`pool.req.snapshot: more than ${maxPages} pages`);
      const page = await ask({ ...base, cursor: next });
      if (page.expired) {
        expired = true;
        break;
      }
      if (page.next !== undefined) {
        const at = parseCursor(page.next);
        if (at.cut !== cut || at.index !== pages + 1) throw new Error(`pool.req.snapshot: page ${pages} named ${page.next}, not page ${pages + 1} of cut ${cut}`);
      }
      for (const pool of page.pools) pools.push(pool);
      for (const node of page.nodes) nodes.push(node);
      next = page.next;
      pages++;
    }
    if (!expired) return { pools, nodes, pages, skipped: first.skipped ?? 0 };
  }
  throw new SnapshotExpired(attempts);
}
