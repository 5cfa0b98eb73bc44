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
  constructor(attempts: number, subject = 'pool.req.snapshot') {
    super(`${subject}: the snapshot expired while its pages were fetched, ${attempts} times`);
  }
}

/** What every paged snapshot reply has: the next page's cursor, or word that the cut is gone. */
export interface PagedReply {
  readonly next?: string | undefined;
  readonly expired?: true | undefined;
  readonly skipped?: number | undefined;
}

/**
 * The cursor protocol, for any snapshot subject served by SnapshotPages: fetches the pages of
 * one cut in order through `ask` and resolves with them. Throws when a page does not come,
 * when a page belongs to another cut, or when the cut expired `attempts` times in a row.
 */
export async function requestPages<R extends PagedReply>(subject: string, ask: (cursor: string | undefined) => Promise<R>, opts: FetchSnapshotOptions = {}): Promise<R[]> {
  const attempts = opts.attempts ?? 3;
  const maxPages = opts.maxPages ?? 10_000;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const first = await ask(undefined);
    if (first.expired) continue;
    const pages = [first];
    const cut = first.next === undefined ? undefined : parseCursor(first.next).cut;
    let next = first.next;
    let expired = false;
    while (next !== undefined) {
      if (pages.length >= maxPages) throw new Error(`${subject}: more than ${maxPages} pages`);
      const page = await ask(next);
      if (page.expired) {
        expired = true;
        break;
      }
      if (page.next !== undefined) {
        const at = parseCursor(page.next);
        if (at.cut !== cut || at.index !== pages.length + 1) throw new Error(`${subject}: page ${pages.length} named ${page.next}, not page ${pages.length + 1} of cut ${cut}`);
      }
      pages.push(page);
      next = page.next;
    }
    if (!expired) return pages;
  }
  throw new SnapshotExpired(attempts, subject);
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
  const base: SnapshotRequest = p.tenantId !== undefined ? { tenantId: p.tenantId } : {};
  const pages = await requestPages('pool.req.snapshot', (cursor) => ask(cursor === undefined ? base : { ...base, cursor }), opts);
  const pools: PoolView[] = [];
  const nodes: NodeView[] = [];
  for (const page of pages) {
    for (const pool of page.pools) pools.push(pool);
    for (const node of page.nodes) nodes.push(node);
  }
  return { pools, nodes, pages: pages.length, skipped: pages[0]!.skipped ?? 0 };
}
