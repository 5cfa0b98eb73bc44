import { randomBytes } from 'node:crypto';
import { formatIssues, NodeView, PoolView, schemaIssues, type Payload, type ReplyOf } from '@switchyard/contracts';

// `pool.req.snapshot` in pages, both ends. The owner reads its state once, cuts it into pages
// that each fit a NATS message, and serves every page from that one read, so an assembled
// snapshot is exactly what one read saw: nothing of two moments mixed. The requester fetches
// the pages in order and starts over when the cut is gone; a follower that noted the time
// before asking keeps trusting the events since then, however long the pages take.

type SnapshotRequest = Payload<'pool.req.snapshot'>;
type SnapshotPage = ReplyOf<'pool.req.snapshot'>;

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
function parseCursor(cursor: string): { cut: string; index: number } {
  const dot = cursor.indexOf('.');
  return { cut: cursor.slice(0, dot), index: Number(cursor.slice(dot + 1)) };
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
  throw new Error(`pool.req.snapshot: the snapshot expired while its pages were fetched, ${attempts} times`);
}

/** A row the owner left out of a snapshot, and why. */
export interface SkippedRow {
  readonly kind: 'pool' | 'node';
  readonly tenantId: string;
  readonly poolId: string;
  readonly nodeId?: string;
  /** For a pool: its nodes, left out with it. */
  readonly nodes?: number;
  readonly reason: string;
}

/** Bytes of a page's fixed part: braces, keys, a cursor and a count, with room to spare. */
const PAGE_ENVELOPE_BYTES = 256;

const stringOr = (v: unknown): string => (typeof v === 'string' ? v : String(v));

function jsonBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value));
}

export interface Cut {
  readonly pages: PoolSnapshot[];
  readonly skipped: number;
  readonly bytes: number;
}

/**
 * Cuts a snapshot into pages of at most `pageBytes` of JSON. A pool that fails its schema, or
 * that could not fit a page alone, is left out with its nodes, and a node that fails its
 * schema alone: each is told to `onSkip` once (a pool with the count of its nodes), and the
 * rest is served. Each pool comes with its nodes after it, so a page rarely splits a pool.
 */
export function cutSnapshot(snapshot: PoolSnapshot, pageBytes: number, onSkip: (row: SkippedRow) => void): Cut {
  const limit = pageBytes - PAGE_ENVELOPE_BYTES;
  const nodesOf = new Map<string, NodeView[]>();
  for (const node of snapshot.nodes) {
    const key = `${stringOr(node?.tenantId)}/${stringOr(node?.poolId)}`;
    const list = nodesOf.get(key);
    if (list) list.push(node);
    else nodesOf.set(key, [node]);
  }

  const pages: PoolSnapshot[] = [];
  let page: PoolSnapshot = { pools: [], nodes: [] };
  let used = 0;
  let bytes = 0;
  let skipped = 0;
  const place = (kind: 'pools' | 'nodes', row: PoolView & NodeView, size: number) => {
    if (used + size + 1 > limit && used > 0) {
      pages.push(page);
      page = { pools: [], nodes: [] };
      used = 0;
    }
    (page[kind] as unknown[]).push(row);
    used += size + 1;
    bytes += size + 1;
  };
  /** The reason a row cannot be served, or its size in bytes. */
  const check = (schema: typeof PoolView | typeof NodeView, row: unknown): string | number => {
    const issues = schemaIssues(schema, row);
    if (issues.length) return `fails its schema: ${formatIssues(issues)}`;
    const size = jsonBytes(row);
    return size > limit ? `is ${size} bytes of JSON, more than a page holds (${limit})` : size;
  };
  const placeNodes = (nodes: readonly NodeView[]) => {
    for (const node of nodes) {
      const verdict = check(NodeView, node);
      if (typeof verdict === 'number') place('nodes', node as PoolView & NodeView, verdict);
      else {
        skipped++;
        onSkip({ kind: 'node', tenantId: stringOr(node?.tenantId), poolId: stringOr(node?.poolId), nodeId: stringOr(node?.nodeId), reason: verdict });
      }
    }
  };

  for (const pool of snapshot.pools) {
    const key = `${stringOr(pool?.tenantId)}/${stringOr(pool?.poolId)}`;
    const nodes = nodesOf.get(key) ?? [];
    nodesOf.delete(key);
    const verdict = check(PoolView, pool);
    if (typeof verdict === 'string') {
      skipped += 1 + nodes.length;
      onSkip({ kind: 'pool', tenantId: stringOr(pool?.tenantId), poolId: stringOr(pool?.poolId), nodes: nodes.length, reason: verdict });
      continue;
    }
    place('pools', pool as PoolView & NodeView, verdict);
    placeNodes(nodes);
  }
  // Nodes of a pool that is not live any more (mid-delete) are still served, after the pools.
  for (const nodes of nodesOf.values()) placeNodes(nodes);
  pages.push(page);
  return { pages, skipped, bytes };
}

export interface SnapshotPagesOptions {
  /** Largest page, in bytes of JSON: the NATS server's max_payload, less room for headers. */
  readonly pageBytes: () => number;
  /** Told each row left out of a cut; called again on every cut the row is still bad in. */
  readonly onSkip: (row: SkippedRow) => void;
  /** How long a cut waits for its next page to be asked; 30 s unless said. */
  readonly ttlMs?: number;
  /** Cuts held at once are bounded by their bytes, the oldest let go first; 256 MiB unless said. */
  readonly maxHeldBytes?: number;
  readonly now?: () => number;
}

interface HeldCut {
  readonly tenantId: string | undefined;
  readonly pages: PoolSnapshot[];
  readonly bytes: number;
  expiresAt: number;
}

/**
 * The owner's half: serves `pool.req.snapshot` from cuts it holds. A request without a cursor
 * reads afresh and answers the first page; the cut's other pages are held until asked for (or
 * for `ttlMs` after the last ask), then let go. A cursor whose cut is gone, or that names
 * another tenant's cut, is answered `expired`: the requester starts over.
 */
export class SnapshotPages {
  private readonly cuts = new Map<string, HeldCut>();
  private held = 0;
  private readonly ttlMs: number;
  private readonly maxHeldBytes: number;
  private readonly now: () => number;

  constructor(private readonly opts: SnapshotPagesOptions) {
    this.ttlMs = opts.ttlMs ?? 30_000;
    this.maxHeldBytes = opts.maxHeldBytes ?? 256 * 1024 * 1024;
    this.now = opts.now ?? Date.now;
  }

  /** Bytes of the cuts held now. */
  heldBytes(): number {
    return this.held;
  }

  async serve(p: SnapshotRequest, read: () => Promise<PoolSnapshot>): Promise<SnapshotPage> {
    this.expire();
    if (p.cursor !== undefined) return this.page(p.cursor, p.tenantId);
    const { pages, skipped, bytes } = cutSnapshot(await read(), this.opts.pageBytes(), this.opts.onSkip);
    const first = { ...pages[0]!, ...(skipped ? { skipped } : {}) };
    if (pages.length === 1) return first;
    const id = randomBytes(16).toString('hex');
    this.cuts.set(id, { tenantId: p.tenantId, pages, bytes, expiresAt: this.now() + this.ttlMs });
    this.held += bytes;
    for (const [other, cut] of this.cuts) {
      if (this.held <= this.maxHeldBytes || other === id) break;
      this.drop(other, cut);
    }
    return { ...first, next: `${id}.1` };
  }

  private page(cursor: string, tenantId: string | undefined): SnapshotPage {
    const { cut: id, index } = parseCursor(cursor);
    const cut = this.cuts.get(id);
    if (!cut || cut.tenantId !== tenantId || index < 1 || index >= cut.pages.length) return { pools: [], nodes: [], expired: true };
    const page = cut.pages[index]!;
    if (index === cut.pages.length - 1) {
      this.drop(id, cut);
      return page;
    }
    cut.expiresAt = this.now() + this.ttlMs;
    return { ...page, next: `${id}.${index + 1}` };
  }

  private expire(): void {
    const now = this.now();
    for (const [id, cut] of this.cuts) if (cut.expiresAt <= now) this.drop(id, cut);
  }

  private drop(id: string, cut: HeldCut): void {
    if (this.cuts.delete(id)) this.held -= cut.bytes;
  }
}
