import type { AclPolicyView, NodeView, Payload, PoolView, ReplyOf } from '@switchyard/contracts';

// A snapshot in pages, the requester's end (the owner's is snapshot-pages.ts): `pool.req.snapshot`
// and `acl.req.snapshot` share it. The owner serves every page from one read, so an assembled
// snapshot is exactly what one read saw: nothing of two moments mixed. The requester fetches
// the pages in order and starts over when the cut is gone; a follower that noted the time
// before asking keeps trusting the events since then, however long the pages take.

export type SnapshotRequest = Payload<'pool.req.snapshot'>;
export type SnapshotPage = ReplyOf<'pool.req.snapshot'>;

/** What every paged snapshot request carries: whose state, and which page. */
export interface PagedRequest {
  readonly tenantId?: string | undefined;
  readonly cursor?: string | undefined;
}
/** A page as served: its rows, the next page's cursor, and the flags of the protocol. */
export type Paged<P> = P & { next?: string; expired?: true; skipped?: number };

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

/** One page of `acl.req.snapshot`: every tenant's policy at its version (null: removed). */
export interface AclSnapshot {
  readonly policies: AclPolicyView[];
}

export interface FetchedAclSnapshot extends AclSnapshot {
  readonly pages: number;
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

/**
 * Fetches a whole paged snapshot through `ask` (one request, with the caller's timeout), and
 * hands each page of the cut that completes to `collect` (a fresh collector per attempt).
 * Throws when a page does not come, when a page belongs to another cut, or when the cut
 * expired `attempts` times in a row.
 */
export async function requestSnapshotPages<P extends object, R>(
  subject: string,
  ask: (p: PagedRequest) => Promise<Paged<P>>,
  p: { tenantId?: string | undefined },
  collector: () => { add(page: P): void; done(pages: number, skipped: number): R },
  opts: FetchSnapshotOptions = {},
): Promise<R> {
  const attempts = opts.attempts ?? 3;
  const maxPages = opts.maxPages ?? 10_000;
  const base: PagedRequest = p.tenantId !== undefined ? { tenantId: p.tenantId } : {};
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const first = await ask(base);
    if (first.expired) continue;
    const into = collector();
    into.add(first);
    const cut = first.next === undefined ? undefined : parseCursor(first.next).cut;
    let next = first.next;
    let pages = 1;
    let expired = false;
    while (next !== undefined) {
      if (pages >= maxPages) throw new Error(`${subject}: more than ${maxPages} pages`);
      const page = await ask({ ...base, cursor: next });
      if (page.expired) {
        expired = true;
        break;
      }
      if (page.next !== undefined) {
        const at = parseCursor(page.next);
        if (at.cut !== cut || at.index !== pages + 1) throw new Error(`${subject}: page ${pages} named ${page.next}, not page ${pages + 1} of cut ${cut}`);
      }
      into.add(page);
      next = page.next;
      pages++;
    }
    if (!expired) return into.done(pages, first.skipped ?? 0);
  }
  throw new SnapshotExpired(attempts, subject);
}

/** Fetches a whole `pool.req.snapshot`, page after page, through `ask`. */
export async function requestPoolSnapshot(
  ask: (p: SnapshotRequest) => Promise<SnapshotPage>,
  p: { tenantId?: string | undefined } = {},
  opts: FetchSnapshotOptions = {},
): Promise<FetchedSnapshot> {
  return requestSnapshotPages<PoolSnapshot, FetchedSnapshot>(
    'pool.req.snapshot',
    (q) => ask(q as SnapshotRequest),
    p,
    () => {
      const pools: PoolView[] = [];
      const nodes: NodeView[] = [];
      return {
        add: (page) => {
          for (const pool of page.pools) pools.push(pool);
          for (const node of page.nodes) nodes.push(node);
        },
        done: (pages, skipped) => ({ pools, nodes, pages, skipped }),
      };
    },
    opts,
  );
}

/**
 * Fetches a whole `acl.req.snapshot` (every tenant's policy, or one tenant's), page after page,
 * through `ask`: e.g. `requestAclSnapshot((q) => bus.request('acl.req.snapshot', q, { timeoutMs: 5000 }))`.
 */
export async function requestAclSnapshot(
  ask: (p: Payload<'acl.req.snapshot'>) => Promise<ReplyOf<'acl.req.snapshot'>>,
  p: { tenantId?: string | undefined } = {},
  opts: FetchSnapshotOptions = {},
): Promise<FetchedAclSnapshot> {
  return requestSnapshotPages<AclSnapshot, FetchedAclSnapshot>(
    'acl.req.snapshot',
    (q) => ask(q as Payload<'acl.req.snapshot'>),
    p,
    () => {
      const policies: AclPolicyView[] = [];
      return {
        add: (page) => {
          for (const policy of page.policies) policies.push(policy);
        },
        done: (pages, skipped) => ({ policies, pages, skipped }),
      };
    },
    opts,
  );
}
