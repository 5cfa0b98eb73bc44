import type { Bus } from '@switchyard/bus';
import type { ConnectionDestination as AclDestination, ConnectionSource as AclSource, Decision as AclDecision } from '@switchyard/acl';
import type { Redis } from 'ioredis';

// The tenants' ACL policies as every enforcing process holds them (the load balancer's
// workers, the socket activator): compiled once when they arrive, read per connection. The
// gateway owns them; `acl.evt.changed` keeps a book live and `acl.req.snapshot` rebuilds it
// (see followAclPolicies in each service).

// What a connection is judged on, defined once by libs/acl (the evaluator itself is handed in).
export type { ConnectionDestination as AclDestination, ConnectionSource as AclSource, Decision as AclDecision } from '@switchyard/acl';

/** A compiled policy (libs/acl's CompiledPolicy has this shape). */
export interface AclEvaluator {
  decide(src: AclSource, dst: AclDestination): AclDecision;
}

/** One tenant's policy at a version, as `acl.evt.changed` and the snapshot's pages carry it. */
export interface AclPolicyItem {
  readonly tenantId: string;
  readonly version: number;
  /** null: the tenant has no policy (deleted). */
  readonly policy: unknown;
}

const DENY_ALL: AclEvaluator = Object.freeze({ decide: () => ({ allowed: false, rule: null }) });

/**
 * What an event set within this long before a snapshot was asked for wins over the snapshot
 * when the snapshot does not list the tenant (its page may have been read before the change).
 */
const EVENT_TRUST_MS = 5000;

export interface AclPolicyBookOptions {
  /** libs/acl's compilePolicy: throws on a document that is not a valid policy. */
  readonly compile: (doc: unknown) => AclEvaluator;
  /**
   * A policy that does not compile. From an event: the service dead-letters it. Either way
   * the tenant keeps the policy it had, or, if it had none, every connection to its pools is
   * refused: the owner says the tenant has a policy, so the default deny applies.
   */
  readonly onInvalid?: (item: AclPolicyItem, reason: string, from: 'event' | 'snapshot') => void;
  readonly now?: () => number;
}

interface Known {
  version: number;
  /** When an event set this version (0: a snapshot did). */
  eventAt: number;
}

/**
 * The tenants' compiled policies. A version never goes back: an event or a snapshot row older
 * than what the book holds is ignored, deletions included (a deleted policy is remembered by
 * its version until a snapshot no longer lists the tenant).
 */
export class AclPolicyBook {
  /** Read per connection: a tenant without an entry has no policy. */
  private readonly policies = new Map<string, AclEvaluator>();
  private readonly known = new Map<string, Known>();
  private readonly compile: AclPolicyBookOptions['compile'];
  private readonly onInvalid: NonNullable<AclPolicyBookOptions['onInvalid']>;
  private readonly now: () => number;
  private isLoaded = false;

  constructor(opts: AclPolicyBookOptions) {
    this.compile = opts.compile;
    this.onInvalid = opts.onInvalid ?? (() => undefined);
    this.now = opts.now ?? Date.now;
  }

  /**
   * Whether a snapshot was read at least once. Before, the book cannot tell a tenant without a
   * policy from one whose policy it has not heard of: enforcers refuse rather than guess.
   */
  get loaded(): boolean {
    return this.isLoaded;
  }

  /** Tenants with a policy in force. */
  get size(): number {
    return this.policies.size;
  }

  /** The tenant's policy, or undefined when it has none (its pools take every connection, as before policies). */
  policyOf(tenantId: string): AclEvaluator | undefined {
    return this.policies.get(tenantId);
  }

  /** The version the book holds for a tenant (a deletion's too), or undefined. */
  versionOf(tenantId: string): number | undefined {
    return this.known.get(tenantId.toLowerCase())?.version;
  }

  /** `acl.evt.changed`: applied unless the book already holds this version or a newer one. */
  changed(item: AclPolicyItem): boolean {
    return this.apply(item, this.now(), 'event');
  }

  /**
   * Replaces the book with a snapshot: every tenant that has or had a policy, with its version.
   * `requestedAt` (this book's clock): when the snapshot was asked for. A row older than the
   * book's version is ignored; a tenant the snapshot does not list loses its policy unless an
   * event set it since `requestedAt` less a margin.
   */
  replace(items: readonly AclPolicyItem[], requestedAt = this.now()): void {
    const trusted = requestedAt - EVENT_TRUST_MS;
    const listed = new Set<string>();
    for (const item of items) {
      listed.add(item.tenantId.toLowerCase());
      this.apply(item, 0, 'snapshot');
    }
    for (const [tenantId, k] of [...this.known]) {
      if (listed.has(tenantId) || k.eventAt > trusted) continue;
      this.known.delete(tenantId);
      this.policies.delete(tenantId);
    }
    this.isLoaded = true;
  }

  private apply(item: AclPolicyItem, eventAt: number, from: 'event' | 'snapshot'): boolean {
    const tenantId = item.tenantId.toLowerCase();
    const k = this.known.get(tenantId);
    if (k && item.version <= k.version) return false;
    if (item.policy === null || item.policy === undefined) {
      this.known.set(tenantId, { version: item.version, eventAt });
      this.policies.delete(tenantId);
      return true;
    }
    let compiled: AclEvaluator;
    try {
      compiled = this.compile(item.policy);
    } catch (err) {
      // The version is not taken: whatever comes next from the owner, even older than this
      // message claims to be, may still repair the tenant.
      if (!this.policies.has(tenantId)) {
        this.policies.set(tenantId, DENY_ALL);
        this.known.set(tenantId, { version: 0, eventAt });
      }
      this.onInvalid(item, err instanceof Error ? err.message : String(err), from);
      return false;
    }
    this.known.set(tenantId, { version: item.version, eventAt });
    this.policies.set(tenantId, compiled);
    return true;
  }
}

/**
 * The `onInvalid` of a service's book: a warning, and for an event a dead letter on
 * `dlq.acl.evt.changed` naming the reason. Every process of a service hears the event; the
 * message id makes it one dead letter per service and version.
 */
export function reportInvalidPolicies(bus: Pick<Bus, 'deadLetter' | 'service'>, log: { warn(obj: object, msg: string): void }): NonNullable<AclPolicyBookOptions['onInvalid']> {
  return (item, reason, from) => {
    log.warn({ tenantId: item.tenantId, version: item.version, reason, from }, 'an ACL policy that does not compile: the tenant keeps its previous one, or none passes');
    if (from !== 'event') return;
    const msgId = `acl-invalid:${bus.service}:${item.tenantId}:${item.version}`;
    bus
      .deadLetter('acl.evt.changed', Buffer.from(JSON.stringify(item)), `the policy does not compile: ${reason}`, undefined, msgId)
      .catch((err: Error) => log.warn({ err: err.message }, 'an invalid ACL policy could not be dead-lettered'));
  };
}

/**
 * Replaces the book from the gateway's snapshot (`snapshot`: requestAclSnapshot over
 * `acl.req.snapshot`, every page of one cut); throws, and the book stays as it was, when it
 * could not be read.
 */
export function rebuildAclPolicies(book: AclPolicyBook, snapshot: () => Promise<{ readonly policies: readonly AclPolicyItem[] }>): () => Promise<void> {
  return async () => {
    // Noted before asking: events newer than this (less the trust margin) beat the reply.
    const requestedAt = Date.now();
    const { policies } = await snapshot();
    book.replace(policies, requestedAt);
  };
}

export const aclDeniedKey = (tenantId: string) => `acl:denied:${tenantId}`;

/**
 * Denials per tenant and rule, added to Redis (`acl:denied:<tenantId>`, field: the rule's
 * index or `default`) by `flush`, about once a second: a flood of denied connections costs a
 * map increment each, not a Redis command each.
 */
export class AclDenials {
  private readonly pending = new Map<string, Map<string, number>>();

  count(tenantId: string, rule: number | null, n = 1): void {
    let ofTenant = this.pending.get(tenantId);
    if (!ofTenant) this.pending.set(tenantId, (ofTenant = new Map()));
    const field = rule === null ? 'default' : String(rule);
    ofTenant.set(field, (ofTenant.get(field) ?? 0) + n);
  }

  async flush(redis: Redis): Promise<void> {
    if (this.pending.size === 0) return;
    const taken = [...this.pending];
    this.pending.clear();
    const pipe = redis.pipeline();
    for (const [tenantId, fields] of taken) for (const [field, n] of fields) pipe.hincrby(aclDeniedKey(tenantId), field, n);
    try {
      await pipe.exec();
    } catch (err) {
      // Most likely nothing reached Redis: the counts wait for the next flush.
      for (const [tenantId, fields] of taken) for (const [field, n] of fields) this.count(tenantId, field === 'default' ? null : Number(field), n);
      throw err;
    }
  }
}

/** What a front door asks: the tenant's policy, if any, and where a denial is counted and logged. */
export class AclGate {
  constructor(
    readonly book: AclPolicyBook,
    readonly denials: AclDenials,
    private readonly log: { debug(obj: object, msg: string): void },
  ) {}

  /** Policies known, and no tenant has one: nothing to decide (the warm path of a system without policies). */
  get idle(): boolean {
    return this.book.size === 0 && this.book.loaded;
  }

  /** The policies were read once: until then every connection to a pool is refused as unavailable. */
  get ready(): boolean {
    return this.book.loaded;
  }

  /** The tenant's decision for the connection; undefined when it has no policy (allowed, as before policies). */
  decide(tenantId: string, src: AclSource, dst: AclDestination): AclDecision | undefined {
    return this.book.policyOf(tenantId)?.decide(src, dst);
  }

  /** Counts a denial against its rule and logs it (debug). */
  denied(tenantId: string, decision: AclDecision, src: AclSource, dst: AclDestination, where: string): void {
    this.denials.count(tenantId, decision.rule);
    this.log.debug(
      { tenantId, rule: decision.rule ?? 'default', user: src.user, address: src.address, tags: dst.tags, port: dst.port, where },
      'connection denied by the ACL policy',
    );
  }

  /** One pool's check: true when allowed; a denial is counted and logged. */
  allows(tenantId: string, src: AclSource, dst: AclDestination, where: string): boolean {
    const d = this.decide(tenantId, src, dst);
    if (!d || d.allowed) return true;
    this.denied(tenantId, d, src, dst, where);
    return false;
  }
}
