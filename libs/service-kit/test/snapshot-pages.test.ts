import { randomUUID } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { assertPayload, assertReply, type AclPolicyView, type NodeView, type Payload, type PoolView, type ReplyOf } from '@switchyard/contracts';
import { AclSnapshotPages, cutSnapshot, SnapshotPages, type SkippedItem, type SkippedRow } from '../src/snapshot-pages.js';
import { requestAclSnapshot, requestPoolSnapshot, type PoolSnapshot } from '../src/snapshot-request.js';

const PAGE = 16 * 1024;

function pool(tenantId: string, name: string, envBytes = 0): PoolView {
  const env = envBytes ? { FILLER: 'x'.repeat(envBytes) } : undefined;
  return { tenantId, poolId: randomUUID(), name, spec: { name, kind: 'exit', country: 'JP', nodes: { min: 1, max: 1 }, ...(env ? { env } : {}) } };
}

function node(p: PoolView, ordinal = 1): NodeView {
  return {
    tenantId: p.tenantId,
    poolId: p.poolId,
    nodeId: randomUUID(),
    name: `${p.name}-${ordinal}`,
    kind: 'exit',
    status: 'running',
    country: 'JP',
    region: null,
    city: null,
    server: null,
    containerId: null,
    ports: [{ name: 'proxy', containerPort: 8888, hostIp: '127.0.0.1', hostPort: 40000 + ordinal }],
    startedAt: null,
    stats: null,
  };
}

/** `count` pools of one tenant, each with one node and `envBytes` of env. */
function fleet(count: number, envBytes = 1000, tenantId = randomUUID()): PoolSnapshot {
  const pools = Array.from({ length: count }, (_, i) => pool(tenantId, `p${i}`, envBytes));
  return { pools, nodes: pools.map((p) => node(p)) };
}

const ids = (s: PoolSnapshot) => ({ pools: s.pools.map((p) => p.poolId).sort(), nodes: s.nodes.map((n) => n.nodeId).sort() });

/** A requester wired straight to a server: each ask is one served request, checked as NATS would. */
function wire(server: SnapshotPages, read: () => Promise<PoolSnapshot>, seen: Array<Payload<'pool.req.snapshot'>> = []) {
  return async (p: Payload<'pool.req.snapshot'>): Promise<ReplyOf<'pool.req.snapshot'>> => {
    seen.push(p);
    const reply = await server.serve(p, read);
    assertReply('pool.req.snapshot', reply);
    return JSON.parse(JSON.stringify(reply));
  };
}

describe('cutSnapshot', () => {
  it('leaves out a pool that fails its schema, with its nodes, tells why once, and keeps the rest', () => {
    const good = fleet(3);
    const bad = pool(good.pools[0]!.tenantId, 'broken');
    // What appendNode once wrote: nodes.min grown past MAX_POOL_NODES.
    (bad.spec.nodes as { min: number }).min = 500;
    const input = { pools: [good.pools[0]!, bad, ...good.pools.slice(1)], nodes: [...good.nodes, node(bad, 1), node(bad, 2)] };
    const skipped: SkippedRow[] = [];
    const cut = cutSnapshot(input, PAGE, (row) => skipped.push(row));
    expect(skipped).toEqual([{ kind: 'pool', tenantId: bad.tenantId, poolId: bad.poolId, nodes: 2, reason: expect.stringContaining('spec.nodes.min') }]);
    expect(cut.skipped).toBe(3);
    const served = { pools: cut.pages.flatMap((p) => p.pools), nodes: cut.pages.flatMap((p) => p.nodes) };
    expect(ids(served)).toEqual(ids(good));
  });

  it('leaves out a node that fails its schema alone', () => {
    const good = fleet(2);
    const broken = { ...node(good.pools[1]!, 2), status: 'exploded' } as unknown as NodeView;
    const skipped: SkippedRow[] = [];
    const cut = cutSnapshot({ ...good, nodes: [...good.nodes, broken] }, PAGE, (row) => skipped.push(row));
    expect(skipped).toMatchObject([{ kind: 'node', nodeId: broken.nodeId, reason: expect.stringContaining('status') }]);
    expect(ids({ pools: cut.pages.flatMap((p) => p.pools), nodes: cut.pages.flatMap((p) => p.nodes) })).toEqual(ids(good));
  });

  it('fills pages up to the byte budget, in order, each pool followed by its nodes', () => {
    const input = fleet(60, 1000);
    const cut = cutSnapshot(input, PAGE, () => expect.unreachable());
    expect(cut.pages.length).toBeGreaterThan(3);
    for (const page of cut.pages) {
      const withCursor = { ...page, next: `${'a'.repeat(32)}.999999`, skipped: 999 };
      expect(Buffer.byteLength(JSON.stringify(withCursor))).toBeLessThanOrEqual(PAGE);
    }
    expect(cut.pages.flatMap((p) => p.pools)).toEqual(input.pools);
    expect(cut.pages.flatMap((p) => p.nodes)).toEqual(input.nodes);
    for (const page of cut.pages) for (const n of page.nodes) expect(cut.pages.findIndex((p) => p.pools.some((x) => x.poolId === n.poolId))).toBe(cut.pages.indexOf(page));
  });

  it('leaves out a pool too large for any page rather than failing every page', () => {
    const input = fleet(3, 100);
    const huge = pool(input.pools[0]!.tenantId, 'huge', 4096);
    huge.spec.env = Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`V${i}`, 'y'.repeat(4096)]));
    const skipped: SkippedRow[] = [];
    const cut = cutSnapshot({ pools: [...input.pools, huge], nodes: input.nodes }, PAGE, (row) => skipped.push(row));
    expect(skipped).toMatchObject([{ kind: 'pool', poolId: huge.poolId, reason: expect.stringMatching(/bytes of JSON, more than a page holds/) }]);
    expect(cut.pages.flatMap((p) => p.pools)).toEqual(input.pools);
  });

  it('answers one empty page for an empty snapshot', () => {
    expect(cutSnapshot({ pools: [], nodes: [] }, PAGE, () => undefined).pages).toEqual([{ pools: [], nodes: [] }]);
  });
});

describe('requestPoolSnapshot with SnapshotPages', () => {
  it('assembles every page of a snapshot larger than a page', async () => {
    const input = fleet(100, 1000);
    const server = new SnapshotPages({ pageBytes: () => PAGE, onSkip: () => undefined });
    const seen: Array<Payload<'pool.req.snapshot'>> = [];
    const got = await requestPoolSnapshot(wire(server, async () => input, seen));
    expect(got.pages).toBeGreaterThan(5);
    expect(seen).toHaveLength(got.pages);
    expect(got.pools).toEqual(input.pools);
    expect(got.nodes).toEqual(input.nodes);
    // The last page let the cut go.
    expect(server.heldBytes()).toBe(0);
  });

  it('serves every page from the one read of the first: a change between pages is not mixed in', async () => {
    let state = fleet(40, 1000);
    const first = state;
    const server = new SnapshotPages({ pageBytes: () => PAGE, onSkip: () => undefined });
    const ask = wire(server, async () => state);
    let asked = 0;
    const got = await requestPoolSnapshot(async (p) => {
      // After the first page, the owner's state moves on: a pool goes, another comes.
      if (asked++ === 1) state = { pools: [...state.pools.slice(1), pool(state.pools[0]!.tenantId, 'newer')], nodes: state.nodes.slice(1) };
      return ask(p);
    });
    expect(got.pages).toBeGreaterThan(1);
    expect(ids(got)).toEqual(ids(first));
    // The next fetch reads afresh and sees the change.
    expect(ids(await requestPoolSnapshot(ask))).toEqual(ids(state));
  });

  it('starts over with a fresh read when the cut expired between pages', async () => {
    let now = 0;
    let reads = 0;
    const input = fleet(40, 1000);
    const server = new SnapshotPages({ pageBytes: () => PAGE, onSkip: () => undefined, ttlMs: 1000, now: () => now });
    const ask = wire(server, async () => (reads++, input));
    let asked = 0;
    const got = await requestPoolSnapshot(async (p) => {
      // The second page is asked for too late, once.
      if (++asked === 2) now += 1001;
      return ask(p);
    });
    expect(reads).toBe(2);
    expect(got.pools).toEqual(input.pools);
  });

  it('gives up after `attempts` expired cuts in a row', async () => {
    let now = 0;
    const server = new SnapshotPages({ pageBytes: () => PAGE, onSkip: () => undefined, ttlMs: 1000, now: () => now });
    const ask = wire(server, async () => fleet(40, 1000));
    const slow = async (p: Payload<'pool.req.snapshot'>) => {
      if (p.cursor) now += 1001;
      return ask(p);
    };
    await expect(requestPoolSnapshot(slow, {}, { attempts: 2 })).rejects.toThrow(/expired while its pages were fetched, 2 times/);
  });

  it("answers a cursor of another tenant's cut as expired", async () => {
    const server = new SnapshotPages({ pageBytes: () => PAGE, onSkip: () => undefined });
    const input = fleet(40, 1000);
    const first = await server.serve({ tenantId: input.pools[0]!.tenantId }, async () => input);
    expect(first.next).toBeDefined();
    expect(await server.serve({ tenantId: randomUUID(), cursor: first.next! }, async () => input)).toEqual({ pools: [], nodes: [], expired: true });
    expect(await server.serve({ cursor: first.next! }, async () => input)).toEqual({ pools: [], nodes: [], expired: true });
    expect(await server.serve({ cursor: `${'0'.repeat(32)}.1` }, async () => input)).toEqual({ pools: [], nodes: [], expired: true });
  });

  it('holds cuts up to maxHeldBytes, letting the oldest go first', async () => {
    const input = fleet(40, 1000);
    const server = new SnapshotPages({ pageBytes: () => PAGE, onSkip: () => undefined, maxHeldBytes: 100_000 });
    const a = await server.serve({}, async () => input);
    const b = await server.serve({}, async () => input);
    expect(server.heldBytes()).toBeLessThanOrEqual(100_000);
    expect((await server.serve({ cursor: a.next! }, async () => input)).expired).toBe(true);
    expect((await server.serve({ cursor: b.next! }, async () => input)).expired).toBeUndefined();
  });

  it('refuses a page that belongs to another cut', async () => {
    const server = new SnapshotPages({ pageBytes: () => PAGE, onSkip: () => undefined });
    const input = fleet(60, 1000);
    const ask = wire(server, async () => input);
    const other = await server.serve({}, async () => input);
    const mixed = async (p: Payload<'pool.req.snapshot'>) => {
      const reply = await ask(p);
      return p.cursor?.endsWith('.1') ? { ...reply, next: other.next!.replace(/\.1$/, '.2') } : reply;
    };
    await expect(requestPoolSnapshot(mixed)).rejects.toThrow(/not page 2 of cut/);
  });

  it('counts what the owner left out, and takes a one-message answer as the whole snapshot', async () => {
    const input = fleet(2, 10);
    const bad = pool(input.pools[0]!.tenantId, 'broken');
    (bad.spec.nodes as { min: number }).min = 500;
    const server = new SnapshotPages({ pageBytes: () => PAGE, onSkip: () => undefined });
    const got = await requestPoolSnapshot(wire(server, async () => ({ ...input, pools: [...input.pools, bad] })));
    expect(got).toMatchObject({ pages: 1, skipped: 1 });
    expect(ids(got)).toEqual(ids(input));
    // An owner that knows no pages (a test's stand-in) answers everything at once.
    expect(await requestPoolSnapshot(async () => input)).toEqual({ ...input, pages: 1, skipped: 0 });
  });

  it('asks for one tenant on every page when asked for one tenant', async () => {
    const input = fleet(40, 1000);
    const tenantId = input.pools[0]!.tenantId;
    const server = new SnapshotPages({ pageBytes: () => PAGE, onSkip: () => undefined });
    const seen: Array<Payload<'pool.req.snapshot'>> = [];
    await requestPoolSnapshot(
      wire(server, async () => input, seen),
      { tenantId },
    );
    expect(seen.length).toBeGreaterThan(1);
    for (const p of seen) expect(p.tenantId).toBe(tenantId);
  });

  it('a flood of per-tenant reads does not expire an all-tenant cut being paged', async () => {
    const all = fleet(60, 1000);
    const server = new SnapshotPages({ pageBytes: () => PAGE, onSkip: () => undefined, maxHeldBytes: 100_000, maxTenantHeldBytes: 100_000 });
    const first = await server.serve({}, async () => all);
    expect(first.next).toBeDefined();
    // A member's parallel GETs: far more per-tenant bytes than either budget, none paged to the end.
    const tenant = fleet(40, 1000);
    const tenantId = tenant.pools[0]!.tenantId;
    for (let round = 0; round < 10; round++) {
      const flood = await Promise.all(Array.from({ length: 5 }, () => server.serve({ tenantId }, async () => tenant)));
      for (const reply of flood) expect(reply.next).toBeDefined();
    }
    expect(server.heldBytes()).toBeLessThanOrEqual(200_000);
    // The all-tenant requester carries on from its first page and gets the whole cut.
    const pools = first.pools.slice();
    let next = first.next;
    while (next !== undefined) {
      const page = await server.serve({ cursor: next }, async () => all);
      expect(page.expired).toBeUndefined();
      pools.push(...page.pools);
      next = page.next;
    }
    expect(pools).toEqual(all.pools);
  });

  it('concurrent identical per-tenant reads build one cut', async () => {
    const input = fleet(40, 1000);
    const tenantId = input.pools[0]!.tenantId;
    const server = new SnapshotPages({ pageBytes: () => PAGE, onSkip: () => undefined });
    let reads = 0;
    const read = async () => {
      reads++;
      return input;
    };
    const got = await Promise.all(Array.from({ length: 10 }, () => requestPoolSnapshot(wire(server, read), { tenantId })));
    expect(reads).toBe(1);
    for (const snapshot of got) expect(ids(snapshot)).toEqual(ids(input));
    // Every reader was served the last page, so the shared cut is let go.
    expect(server.heldBytes()).toBe(0);

    // Requests arriving while a read is in progress share the next read, never the one begun before them.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    reads = 0;
    const slow = async () => {
      reads++;
      await gate;
      return input;
    };
    const early = server.serve({ tenantId }, slow);
    await vi.waitFor(() => expect(reads).toBe(1));
    const late = Array.from({ length: 5 }, () => server.serve({ tenantId }, slow));
    release();
    const replies = await Promise.all([early, ...late]);
    expect(reads).toBe(2);
    const cuts = new Set(replies.map((r) => r.next!.split('.')[0]));
    expect(cuts.size).toBe(2);
  });

  it('at most N cuts are built at once', async () => {
    const server = new SnapshotPages({ pageBytes: () => PAGE, onSkip: () => undefined, maxBuilding: 2, maxWaiting: 3 });
    const gates: Array<() => void> = [];
    let inFlight = 0;
    let most = 0;
    const started: PoolSnapshot[] = [];
    const read = (input: PoolSnapshot) => async () => {
      started.push(input);
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise<void>((resolve) => gates.push(resolve));
      inFlight--;
      return input;
    };
    const tenants = Array.from({ length: 5 }, () => fleet(2, 10));
    const ask = (t: PoolSnapshot) => server.serve({ tenantId: t.pools[0]!.tenantId }, read(t));
    const replies = tenants.slice(0, 2).map(ask);
    await vi.waitFor(() => expect(gates).toHaveLength(2));
    replies.push(...tenants.slice(2).map(ask));
    expect(server.building()).toBe(2);
    // Three tenants wait; a sixth is told to come back, which requestPoolSnapshot does.
    expect(await server.serve({ tenantId: randomUUID() }, read(fleet(1, 10)))).toEqual({ pools: [], nodes: [], expired: true });
    // An all-tenant read is never turned away and starts before the waiting tenants.
    const all = fleet(3, 10);
    const everyone = server.serve({}, read(all));
    for (let opened = 0; opened < 6; opened++) {
      await vi.waitFor(() => expect(gates.length).toBeGreaterThanOrEqual(Math.min(opened + 2, 6)));
      // Both slots stay busy while reads wait, and the all-tenant read took the first free one.
      if (opened < 5) expect(inFlight).toBe(2);
      if (opened === 1) expect(started[2]).toBe(all);
      gates[opened]!();
    }
    const served = await Promise.all(replies);
    served.forEach((reply, i) => expect(reply.pools).toEqual(tenants[i]!.pools));
    expect((await everyone).pools).toHaveLength(3);
    expect(most).toBe(2);
    expect(server.building()).toBe(0);
  });
});

describe('acl.req.snapshot: the same protocol over a flat list (AclSnapshotPages, requestAclSnapshot)', () => {
  /** A tenant's policy of `rules` rules: big enough that a few fill a page. */
  const view = (rules: number, version = 1): AclPolicyView => ({
    tenantId: randomUUID(),
    version,
    policy: { tagOwners: { 'tag:web': [] }, acls: Array.from({ length: rules }, (_, i) => ({ action: 'accept' as const, src: [`user${i}`], dst: ['tag:web:443'] })) },
  });
  const aclWire = (server: AclSnapshotPages, read: () => Promise<AclPolicyView[]>) => async (p: Payload<'acl.req.snapshot'>) => {
    assertPayload('acl.req.snapshot', p);
    const reply = await server.serve(p, read);
    assertReply('acl.req.snapshot', reply);
    return JSON.parse(JSON.stringify(reply)) as ReplyOf<'acl.req.snapshot'>;
  };

  it('assembles every page, removed policies (null) included, and lets the cut go', async () => {
    const input = [...Array.from({ length: 30 }, () => view(40)), { tenantId: randomUUID(), version: 4, policy: null }];
    const server = new AclSnapshotPages({ pageBytes: () => PAGE, onSkip: () => expect.unreachable() });
    const got = await requestAclSnapshot(aclWire(server, async () => input));
    expect(got.pages).toBeGreaterThan(3);
    expect(got.policies).toEqual(input);
    expect(got.skipped).toBe(0);
    expect(server.heldBytes()).toBe(0);
  });

  it('leaves out a row that fails its schema, tells why, and serves the rest', async () => {
    const good = [view(2), view(3)];
    const bad = { ...view(1), version: 0 };
    const skipped: SkippedItem[] = [];
    const server = new AclSnapshotPages({ pageBytes: () => PAGE, onSkip: (row) => skipped.push(row) });
    const got = await requestAclSnapshot(aclWire(server, async () => [good[0]!, bad, good[1]!]));
    expect(got.policies).toEqual(good);
    expect(got.skipped).toBe(1);
    expect(skipped).toEqual([{ tenantId: bad.tenantId, reason: expect.stringContaining('version') }]);
  });

  it('answers a cursor of another tenant, or of a cut let go, expired', async () => {
    const server = new AclSnapshotPages({ pageBytes: () => PAGE, onSkip: () => undefined });
    const tenantId = randomUUID();
    const first = await server.serve({ tenantId }, async () => Array.from({ length: 20 }, () => ({ ...view(40), tenantId })));
    expect(first.next).toBeDefined();
    expect(await server.serve({ tenantId: randomUUID(), cursor: first.next }, async () => [])).toEqual({ policies: [], expired: true });
    expect(await server.serve({ cursor: `${'0'.repeat(32)}.1` }, async () => [])).toEqual({ policies: [], expired: true });
  });
});
