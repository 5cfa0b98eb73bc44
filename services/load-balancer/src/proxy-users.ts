import { createHash, timingSafeEqual } from 'node:crypto';
import type { Payload, ProxyUserView, ReplyOf } from '@switchyard/contracts';
import { deriveScrypt, type ScryptCost, sameSecret } from '@switchyard/secrets';
import type { EventHandlers } from '@switchyard/service-kit';
import type { ProxyUser } from './settings.js';

const sha256 = (s: string) => createHash('sha256').update(s).digest();

export type Derive = (password: string, salt: Buffer, cost: ScryptCost, length: number) => Promise<Buffer>;

/**
 * Keys remembered for a while, bounded in size (the oldest entry goes first) and in age.
 * Successful verifications, so scrypt runs once per user and password rather than per
 * connection (a key names the user's id and the password's sha256, never the password), and
 * recent failures per name and client address.
 */
export class VerifiedCache {
  private readonly entries = new Map<string, number>();

  constructor(
    private readonly maxEntries: number,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  has(key: string): boolean {
    const expires = this.entries.get(key);
    if (expires === undefined) return false;
    if (expires > this.now()) return true;
    this.entries.delete(key);
    return false;
  }

  add(key: string): void {
    this.entries.delete(key);
    this.entries.set(key, this.now() + this.ttlMs);
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
  }
}

interface Entry {
  readonly id: string;
  readonly tenantId: string;
  readonly name: string;
  readonly cost: ScryptCost;
  readonly salt: Buffer;
  readonly hash: Buffer;
  /** When an event (not a snapshot) put it here; 0 for snapshot entries. */
  readonly eventAt: number;
}

export interface ProxyUserBookOptions {
  readonly cacheEntries?: number;
  readonly cacheTtlMs?: number;
  /**
   * Distinct verifications running or queued at once; beyond it a credential is refused
   * unchecked, so a flood of wrong passwords costs a bounded amount of scrypt.
   */
  readonly maxPending?: number;
  /**
   * Verifications of one user name running at once (within `maxPending`): a flood of wrong
   * passwords for one guessable name cannot take the budget the other users need.
   */
  readonly maxPendingPerName?: number;
  /**
   * After a password failed for a name, that client address is refused for the name unchecked
   * for this long, so repeated guesses from one address do not each cost a scrypt.
   */
  readonly failureBackoffMs?: number;
  /** (name, client address) pairs remembered for the backoff; beyond it the oldest goes first. */
  readonly failureEntries?: number;
  readonly derive?: Derive;
  readonly now?: () => number;
}

/** As the routing table: what an event set this shortly before a snapshot was asked for beats the snapshot. */
const EVENT_TRUST_MS = 5000;
/** Revoked ids remembered so a snapshot taken before the revocation cannot bring one back; ids are never reused. */
const REVOKED_MEMORY = 100_000;

/**
 * The tenants' proxy users as the gateway announced them: name → hash parameters. Kept
 * current by `proxyuser.evt.*` and rebuilt from `proxyuser.req.snapshot`, in every worker.
 */
export class ProxyUserBook {
  private readonly byId = new Map<string, Entry>();
  /** Names are unique per tenant only: one name may have an entry of several tenants. */
  private readonly byName = new Map<string, Map<string, Entry>>();
  private readonly revokedIds = new Set<string>();
  /** Keyed by password digest and name: connections with the same credentials share one check. */
  private readonly pending = new Map<string, Promise<Entry | undefined>>();
  private readonly pendingByName = new Map<string, number>();
  private readonly cache: VerifiedCache;
  /** (name, client address) pairs whose last check failed a moment ago. */
  private readonly failures: VerifiedCache;
  private readonly maxPending: number;
  private readonly maxPendingPerName: number;
  private readonly derive: Derive;
  private readonly now: () => number;

  constructor(opts: ProxyUserBookOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.cache = new VerifiedCache(opts.cacheEntries ?? 10_000, opts.cacheTtlMs ?? 300_000, this.now);
    this.failures = new VerifiedCache(opts.failureEntries ?? 10_000, opts.failureBackoffMs ?? 1000, this.now);
    this.maxPending = opts.maxPending ?? 64;
    this.maxPendingPerName = opts.maxPendingPerName ?? 4;
    this.derive = opts.derive ?? deriveScrypt;
  }

  get size(): number {
    return this.byId.size;
  }

  created(view: ProxyUserView): void {
    if (this.revokedIds.has(view.userId)) return;
    this.put(view, this.now());
  }

  revoked(p: Pick<Payload<'proxyuser.evt.revoked'>, 'userId'>): void {
    this.remove(p.userId);
    this.revokedIds.delete(p.userId);
    this.revokedIds.add(p.userId);
    if (this.revokedIds.size > REVOKED_MEMORY) this.revokedIds.delete(this.revokedIds.values().next().value!);
  }

  /** `requestedAt` (this book's clock): when the snapshot was asked for. */
  replace(users: readonly ProxyUserView[], requestedAt = this.now()): void {
    const trusted = requestedAt - EVENT_TRUST_MS;
    const listed = new Set(users.map((u) => u.userId));
    for (const e of [...this.byId.values()]) if (!listed.has(e.id) && e.eventAt <= trusted) this.remove(e.id);
    for (const u of users) if (!this.revokedIds.has(u.userId) && !this.byId.has(u.userId)) this.put(u, 0);
  }

  /**
   * The tenant whose user `name` has this password, or undefined. `client` (the peer's
   * address) is what a failure backs off; without it every attempt is checked.
   */
  async verify(name: string, password: string, client?: string): Promise<string | undefined> {
    const candidates = this.byName.get(name);
    if (!candidates) return undefined;
    const digest = sha256(password).toString('hex');
    // A verified password passes even from an address in backoff: it costs no scrypt.
    for (const e of candidates.values()) if (this.cache.has(`${e.id}:${digest}`)) return e.tenantId;
    const failed = client === undefined ? undefined : `${name}\0${client}`;
    if (failed !== undefined && this.failures.has(failed)) return undefined;
    const key = `${digest}:${name}`;
    let running = this.pending.get(key);
    if (!running) {
      const ofName = this.pendingByName.get(name) ?? 0;
      if (this.pending.size >= this.maxPending || ofName >= this.maxPendingPerName) return undefined;
      this.pendingByName.set(name, ofName + 1);
      running = this.attempt([...candidates.values()], password, digest).finally(() => {
        this.pending.delete(key);
        const left = this.pendingByName.get(name)! - 1;
        if (left === 0) this.pendingByName.delete(name);
        else this.pendingByName.set(name, left);
      });
      this.pending.set(key, running);
    }
    const matched = await running;
    // Checked again after the await: a revocation while scrypt ran wins.
    if (matched && this.byId.get(matched.id) === matched) return matched.tenantId;
    if (failed !== undefined) this.failures.add(failed);
    return undefined;
  }

  /** Same-named users of several tenants are tried one after another: one scrypt at a time per attempt. */
  private async attempt(entries: readonly Entry[], password: string, digest: string): Promise<Entry | undefined> {
    for (const e of entries) {
      const ok = await this.derive(password, e.salt, e.cost, e.hash.length).then(
        (key) => key.length === e.hash.length && timingSafeEqual(key, e.hash),
        () => false,
      );
      if (ok && this.byId.get(e.id) === e) {
        this.cache.add(`${e.id}:${digest}`);
        return e;
      }
    }
    return undefined;
  }

  private put(view: ProxyUserView, eventAt: number): void {
    this.remove(view.userId);
    const e: Entry = {
      id: view.userId,
      tenantId: view.tenantId.toLowerCase(),
      name: view.name,
      cost: { n: view.hash.n, r: view.hash.r, p: view.hash.p },
      salt: Buffer.from(view.hash.salt, 'base64'),
      hash: Buffer.from(view.hash.hash, 'base64'),
      eventAt,
    };
    this.byId.set(e.id, e);
    let named = this.byName.get(e.name);
    if (!named) this.byName.set(e.name, (named = new Map()));
    named.set(e.id, e);
  }

  private remove(id: string): void {
    const e = this.byId.get(id);
    if (!e) return;
    this.byId.delete(id);
    const named = this.byName.get(e.name);
    named?.delete(id);
    if (named?.size === 0) this.byName.delete(e.name);
  }
}

/** Every credential the proxy ports accept: LB_PROXY_USERS and the tenants' proxy users. */
export class ProxyCredentials {
  constructor(
    private readonly fixed: ReadonlyMap<string, ProxyUser>,
    readonly book: ProxyUserBook,
  ) {}

  /** Whether any credential exists now; the front door asks this before deciding to authenticate. */
  configured(): boolean {
    return this.fixed.size > 0 || this.book.size > 0;
  }

  /** The tenant the user name and password belong to, or undefined when they match no credential. */
  async verify(user: string, password: string, client?: string): Promise<string | undefined> {
    const fixed = this.fixed.get(user);
    if (fixed && sameSecret(fixed.password, password)) return fixed.tenantId;
    return this.book.verify(user, password, client);
  }
}

/** Events keep every worker's book live between rebuilds. */
export function proxyUserEvents(book: ProxyUserBook) {
  return {
    'proxyuser.evt.created': async (p) => book.created(p),
    'proxyuser.evt.revoked': async (p) => book.revoked(p),
  } satisfies EventHandlers;
}

/** Bound on the pages of one rebuild (a million users at the gateway's page size). */
const MAX_PAGES = 1000;

/**
 * Replaces the book from the gateway's snapshot, read page by page; throws (and the book
 * stays as it was) when a page does not come.
 */
export function rebuildProxyUsers(book: ProxyUserBook, snapshot: (p: Payload<'proxyuser.req.snapshot'>) => Promise<ReplyOf<'proxyuser.req.snapshot'>>): () => Promise<void> {
  return async () => {
    const requestedAt = Date.now();
    const users: ProxyUserView[] = [];
    let after: string | undefined;
    for (let pages = 0; ; pages++) {
      if (pages === MAX_PAGES) throw new Error(`proxy user snapshot longer than ${MAX_PAGES} pages`);
      const reply = await snapshot(after === undefined ? {} : { after });
      users.push(...reply.users);
      if (!reply.more || reply.users.length === 0) break;
      after = reply.users.at(-1)!.userId;
    }
    book.replace(users, requestedAt);
  };
}
