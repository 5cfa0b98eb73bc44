import { randomBytes } from 'node:crypto';
import type { TSchema } from 'typebox';
import { AclPolicyView, formatIssues, NodeView, PoolView, schemaIssues } from '@switchyard/contracts';
import { parseCursor, type AclSnapshot, type Paged, type PagedRequest, type PoolSnapshot } from './snapshot-request.js';

// A snapshot in pages, the owner's end (`pool.req.snapshot`, `acl.req.snapshot`): it reads its
// state once, cuts it into pages that each fit a NATS message, and serves every page from that
// one read (see snapshot-request.ts for the requester's end). The paging is written once here;
// each snapshot only says how its state is cut.
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

export interface Cut<P = PoolSnapshot> {
  readonly pages: P[];
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

/** A row of a flat snapshot (one list of rows) the owner left out, and why. */
export interface SkippedItem {
  readonly tenantId: string;
  readonly reason: string;
}

/**
 * Cuts a flat list of rows into pages of at most `pageBytes` of JSON, each page `{ [key]: rows }`.
 * A row that fails `schema`, or that could not fit a page alone, is left out and told to `onSkip`.
 */
export function cutRows<K extends string, R>(key: K, schema: TSchema, rows: readonly R[], pageBytes: number, onSkip: (row: SkippedItem) => void): Cut<Record<K, R[]>> {
  const limit = pageBytes - PAGE_ENVELOPE_BYTES;
  const fresh = () => ({ [key]: [] as R[] }) as Record<K, R[]>;
  const pages: Record<K, R[]>[] = [];
  let page = fresh();
  let used = 0;
  let bytes = 0;
  let skipped = 0;
  for (const row of rows) {
    const issues = schemaIssues(schema, row);
    const size = issues.length ? 0 : jsonBytes(row);
    const reason = issues.length ? `fails its schema: ${formatIssues(issues)}` : size > limit ? `is ${size} bytes of JSON, more than a page holds (${limit})` : undefined;
    if (reason) {
      skipped++;
      onSkip({ tenantId: stringOr((row as { tenantId?: unknown } | null)?.tenantId), reason });
      continue;
    }
    if (used + size + 1 > limit && used > 0) {
      pages.push(page);
      page = fresh();
      used = 0;
    }
    page[key].push(row);
    used += size + 1;
    bytes += size + 1;
  }
  pages.push(page);
  return { pages, skipped, bytes };
}

/** How one kind of snapshot is cut into pages, and what its empty page looks like. */
export interface SnapshotCodec<S, P extends object> {
  cut(snapshot: S, pageBytes: number): Cut<P>;
  empty(): P;
}

export interface SnapshotServerOptions {
  /** Largest page, in bytes of JSON: the NATS server's max_payload, less room for headers. */
  readonly pageBytes: () => number;
  /** How long a cut waits for its next page to be asked; 30 s unless said. */
  readonly ttlMs?: number;
  /** All-tenant cuts held at once are bounded by their bytes, the oldest let go first; 256 MiB unless said. */
  readonly maxHeldBytes?: number;
  /** Per-tenant cuts have a budget of their own, so they never let an all-tenant cut go; 64 MiB unless said. */
  readonly maxTenantHeldBytes?: number;
  /** Cuts being read and cut at once; 4 unless said. */
  readonly maxBuilding?: number;
  /** Per-tenant reads waiting for their turn; past this, a first page is answered `expired`; 64 unless said. */
  readonly maxWaiting?: number;
  readonly now?: () => number;
}

export interface SnapshotPagesOptions extends SnapshotServerOptions {
  /** Told each row left out of a cut; called again on every cut the row is still bad in. */
  readonly onSkip: (row: SkippedRow) => void;
}

interface HeldCut<P> {
  readonly tenantId: string | undefined;
  readonly pages: P[];
  readonly bytes: number;
  /** Requesters of the cut that have not yet been served its last page. */
  readers: number;
  expiresAt: number;
}

/** A read not started yet, shared by every request for the same tenant (or all) until it starts. */
interface Build<S, P> {
  readonly key: string;
  readonly tenantId: string | undefined;
  readonly read: () => Promise<S>;
  readers: number;
  readonly done: Promise<Paged<P>>;
  resolve(first: Paged<P>): void;
  reject(err: unknown): void;
}

const ALL = '*';

/**
 * The owner's half: serves a paged snapshot request from cuts it holds. A request without a cursor
 * reads afresh and answers the first page; the cut's other pages are held until asked for (or
 * for `ttlMs` after the last ask), then let go. A cursor whose cut is gone, or that names
 * another tenant's cut, is answered `expired`: the requester starts over.
 *
 * A read costs the whole state of its tenant (or of all), so reads are rationed: at most
 * `maxBuilding` are built at once, and requests for the same tenant share one read that has
 * not started yet. Only one not started: a request never gets a read begun before it arrived,
 * which would hand a follower a state older than the moment it noted. Per-tenant cuts are held
 * on a budget of their own, so a tenant's flood cannot let go the all-tenant cuts that
 * routing and checking services page through to rebuild.
 */
export class SnapshotServer<S, P extends object> {
  private readonly cuts = new Map<string, HeldCut<P>>();
  private heldAll = 0;
  private heldTenant = 0;
  private readonly ttlMs: number;
  private readonly maxHeldBytes: number;
  private readonly maxTenantHeldBytes: number;
  private readonly maxBuilding: number;
  private readonly maxWaiting: number;
  private readonly now: () => number;
  /** Reads not started, in the order they start; the all-tenant read goes first. */
  private readonly queue: Build<S, P>[] = [];
  private readonly waiting = new Map<string, Build<S, P>>();
  /** Keys with a read in progress: a key's reads run one after another. */
  private readonly reading = new Set<string>();
  private pumpScheduled = false;

  constructor(
    private readonly opts: SnapshotServerOptions,
    private readonly codec: SnapshotCodec<S, P>,
  ) {
    this.ttlMs = opts.ttlMs ?? 30_000;
    this.maxHeldBytes = opts.maxHeldBytes ?? 256 * 1024 * 1024;
    this.maxTenantHeldBytes = opts.maxTenantHeldBytes ?? 64 * 1024 * 1024;
    this.maxBuilding = Math.max(1, opts.maxBuilding ?? 4);
    this.maxWaiting = Math.max(1, opts.maxWaiting ?? 64);
    this.now = opts.now ?? Date.now;
  }

  /** Bytes of the cuts held now. */
  heldBytes(): number {
    return this.heldAll + this.heldTenant;
  }

  /** Reads being built now. */
  building(): number {
    return this.reading.size;
  }

  /**
   * Answers one request. `read` must depend on nothing but `p.tenantId`: requests for the same
   * tenant that arrive before a read starts are all answered from the first one's `read`.
   */
  async serve(p: PagedRequest, read: () => Promise<S>): Promise<Paged<P>> {
    this.expire();
    if (p.cursor !== undefined) return this.page(p.cursor, p.tenantId);
    const key = p.tenantId === undefined ? ALL : `t:${p.tenantId}`;
    let build = this.waiting.get(key);
    if (!build) {
      // Waiting per-tenant reads are one per tenant; a flood of tenants is told to come back.
      if (key !== ALL && this.waiting.size - (this.waiting.has(ALL) ? 1 : 0) >= this.maxWaiting) return this.expired();
      let resolve!: (first: Paged<P>) => void;
      let reject!: (err: unknown) => void;
      const done = new Promise<Paged<P>>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      build = { key, tenantId: p.tenantId, read, readers: 0, done, resolve, reject };
      this.waiting.set(key, build);
      if (key === ALL) this.queue.unshift(build);
      else this.queue.push(build);
      this.schedulePump();
    }
    build.readers++;
    return build.done;
  }

  // Deferred to the next turn of the event loop, so that requests arriving together share one read.
  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    for (let i = 0; i < this.queue.length && this.reading.size < this.maxBuilding; ) {
      const build = this.queue[i]!;
      if (this.reading.has(build.key)) {
        i++;
        continue;
      }
      this.queue.splice(i, 1);
      this.waiting.delete(build.key);
      this.reading.add(build.key);
      void this.build(build)
        .then(build.resolve, build.reject)
        .finally(() => {
          this.reading.delete(build.key);
          this.pump();
        });
    }
  }

  private expired(): Paged<P> {
    return { ...this.codec.empty(), expired: true };
  }

  private async build(b: Build<S, P>): Promise<Paged<P>> {
    const { pages, skipped, bytes } = this.codec.cut(await b.read(), this.opts.pageBytes());
    const first: Paged<P> = { ...pages[0]!, ...(skipped ? { skipped } : {}) };
    if (pages.length === 1) return first;
    const id = randomBytes(16).toString('hex');
    this.hold(id, { tenantId: b.tenantId, pages, bytes, readers: b.readers, expiresAt: this.now() + this.ttlMs });
    return { ...first, next: `${id}.1` };
  }

  private hold(id: string, cut: HeldCut<P>): void {
    const all = cut.tenantId === undefined;
    this.cuts.set(id, cut);
    if (all) this.heldAll += cut.bytes;
    else this.heldTenant += cut.bytes;
    const budget = all ? this.maxHeldBytes : this.maxTenantHeldBytes;
    for (const [other, held] of this.cuts) {
      if ((all ? this.heldAll : this.heldTenant) <= budget || other === id) break;
      if ((held.tenantId === undefined) === all) this.drop(other, held);
    }
  }

  private page(cursor: string, tenantId: string | undefined): Paged<P> {
    const { cut: id, index } = parseCursor(cursor);
    const cut = this.cuts.get(id);
    if (!cut || cut.tenantId !== tenantId || index < 1 || index >= cut.pages.length) return this.expired();
    const page = cut.pages[index]!;
    if (index === cut.pages.length - 1) {
      if (--cut.readers <= 0) this.drop(id, cut);
      return page;
    }
    cut.expiresAt = this.now() + this.ttlMs;
    return { ...page, next: `${id}.${index + 1}` };
  }

  private expire(): void {
    const now = this.now();
    for (const [id, cut] of this.cuts) if (cut.expiresAt <= now) this.drop(id, cut);
  }

  private drop(id: string, cut: HeldCut<P>): void {
    if (!this.cuts.delete(id)) return;
    if (cut.tenantId === undefined) this.heldAll -= cut.bytes;
    else this.heldTenant -= cut.bytes;
  }
}

/** `pool.req.snapshot`, the owner's end (exit-node-manager). */
export class SnapshotPages extends SnapshotServer<PoolSnapshot, PoolSnapshot> {
  constructor(opts: SnapshotPagesOptions) {
    super(opts, { cut: (snapshot, pageBytes) => cutSnapshot(snapshot, pageBytes, opts.onSkip), empty: () => ({ pools: [], nodes: [] }) });
  }
}

export interface AclSnapshotPagesOptions extends SnapshotServerOptions {
  /** Told each policy left out of a cut (it fails its schema); called again on every cut it is still bad in. */
  readonly onSkip: (row: SkippedItem) => void;
}

/** `acl.req.snapshot`, the owner's end (api-gateway): every tenant's policy at its version. */
export class AclSnapshotPages extends SnapshotServer<readonly AclPolicyView[], AclSnapshot> {
  constructor(opts: AclSnapshotPagesOptions) {
    super(opts, { cut: (policies, pageBytes) => cutRows('policies', AclPolicyView, policies, pageBytes, opts.onSkip), empty: () => ({ policies: [] }) });
  }
}
