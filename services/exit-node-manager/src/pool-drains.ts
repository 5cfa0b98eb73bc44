import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { backoffDelay, Rejection, REDELIVERY } from '@switchyard/bus';
import { Labels } from '@switchyard/docker';
import { OrderFailure, type OrderRef, type OrderReporter } from '@switchyard/service-kit';
import { DockerOpError } from './docker-ops.js';
import { drainMsOf, type Drain } from './drain.js';
import type { Serial } from './keyed-serial.js';
import type { NodeLifecycle } from './node-lifecycle.js';
import type { DrainKind, DrainRecord, DrainStore, ManagerDeps } from './ports.js';
import type { Pool } from './tables.js';
import type { TenantNetworks } from './tenant-networks.js';

export interface PoolDrains {
  /**
   * Called in the pool's turn. Records the drain and carries it out in the background (a
   * delete first sets the pool's size to 0): announce the nodes draining, wait
   * for their connections to end (up to the pool's drainSec), remove them (and, for a delete,
   * the pool), then fulfil the order. Returns once it is recorded, so a drain of up to an hour
   * never holds a command slot. Without an order, nothing is recorded when the pool already
   * has a drain (a reconciliation finding the surplus a drain in progress is taking away).
   */
  begin(pool: Pool, kind: DrainKind, reason: string, order?: OrderRef, opts?: { keepVolumes?: boolean }): Promise<void>;
  /** Carries out every recorded drain not in progress: after a restart, the ones a crash interrupted. */
  resume(): Promise<void>;
  /** Whether a delete of the pool is in progress (the pool takes no more orders). */
  deleting(pool: Pool): Promise<boolean>;
  /** Resolves once no drain runs in this process. */
  idle(): Promise<void>;
  /** Stops waiting (shutdown); drains not finished stay recorded for the next start. */
  stop(): Promise<void>;
}

export type PoolDrainsDeps = Pick<ManagerDeps, 'repo' | 'bus' | 'log' | 'docker'> & {
  readonly store: DrainStore;
  readonly serial: Serial;
  readonly orders: OrderReporter;
  readonly lifecycle: Pick<NodeLifecycle, 'removeNode'>;
  /** A delete gives the tenant's network back once the tenant has no pool left on it. */
  readonly networks: Pick<TenantNetworks, 'release'>;
  readonly drain: Drain;
  /** The reconciler's (passed in, as it uses these drains). */
  readonly removeStrays: (pool: Pool, liveNodeIds: ReadonlySet<string>) => Promise<void>;
  readonly reconcile: (pool: Pool) => Promise<{ nodeIds: string[] }>;
  /** How often a running drain reports progress on its order; a minute unless said. */
  readonly heartbeatMs?: number | undefined;
};

/** Attempts of a drain whose edges (Postgres, Docker) fail; then it waits for the next resume. */
const ATTEMPTS = 12;

export function createPoolDrains(deps: PoolDrainsDeps): PoolDrains {
  const { repo, bus, log, store, serial, orders, lifecycle, drain } = deps;
  const heartbeatMs = deps.heartbeatMs ?? 60_000;
  const running = new Map<string, Promise<void>>();
  const stopping = new AbortController();

  /** One attempt: drain, then remove under the pool's turn, then fulfil. */
  async function carryOut(rec: DrainRecord, ref: OrderRef): Promise<void> {
    const pool = await repo.findPool(rec.tenantId, rec.poolId);
    if (!pool) throw new OrderFailure(`unknown pool ${rec.poolId}`);
    if (rec.kind === 'scale' && pool.status === 'deleted') throw new OrderFailure(`pool ${pool.name} was deleted before its scale-down finished`);
    const live = (await repo.poolNodes(pool.tenant_id, pool.id)).filter((n) => n.status !== 'removed');
    const leaving = rec.kind === 'delete' ? live : live.filter((n) => n.ordinal > pool.desired_nodes);

    let beat = 0;
    const heartbeat = setInterval(() => {
      beat++;
      orders
        .progress(ref, `draining ${leaving.length} node(s) of pool ${pool.name}: ${Math.round((beat * heartbeatMs) / 1000)} s so far`, {
          step: `drain:${Math.floor(Date.now() / heartbeatMs)}`,
        })
        .catch((err: Error) => log.warn({ err: err.message, poolId: pool.id }, 'drain progress not reported'));
    }, heartbeatMs);
    try {
      await drain(pool, leaving, rec.reason, { deadline: rec.deadline.getTime(), signal: stopping.signal });
    } finally {
      clearInterval(heartbeat);
    }

    await serial(pool.id, async () => {
      const current = (await repo.findPool(pool.tenant_id, pool.id)) ?? pool;
      const nodes = (await repo.poolNodes(pool.tenant_id, pool.id)).filter((n) => n.status !== 'removed');
      if (rec.kind === 'delete') {
        for (const node of nodes) await lifecycle.removeNode(node, rec.reason);
        await deps.removeStrays(current, new Set());
        // Every node's named volumes, old names included: they carry the pool's label.
        if (!rec.keepVolumes) for (const name of await deps.docker.findVolumes({ [Labels.tenant]: pool.tenant_id, [Labels.pool]: pool.id })) await deps.docker.removeVolume(name);
        await repo.markPoolDeleted(pool.tenant_id, pool.id);
        // The pool is gone whatever happens here: a network left behind (the engine away) is
        // reused by the tenant's next pool and given back by its delete.
        await deps.networks.release(pool.tenant_id).catch((err: Error) => log.warn({ err: err.message, tenantId: pool.tenant_id }, 'tenant network not released'));
        await bus.publish('pool.evt.deleted', { tenantId: pool.tenant_id, poolId: pool.id, at: new Date().toISOString() }, { msgId: `pool.evt.deleted:${pool.id}` });
        await orders.fulfil(ref, { poolId: pool.id });
        return;
      }
      // Only the nodes this drain waited for: a further scale-down drains its own for their
      // full drainSec. A drained node the pool wants again (scaled back up meanwhile) goes too
      // and comes back as a new node: the load balancer no longer routes to a draining one.
      const drained = new Set(leaving.map((n) => n.id));
      const gone = nodes.filter((n) => drained.has(n.id));
      for (const node of gone) await lifecycle.removeNode(node, rec.reason);
      if (gone.some((n) => n.ordinal <= current.desired_nodes)) {
        const { nodeIds } = await deps.reconcile(current);
        await orders.fulfil(ref, { poolId: pool.id, nodeIds });
        return;
      }
      const kept = nodes.filter((n) => !gone.includes(n));
      await deps.removeStrays(current, new Set(kept.map((n) => n.id)));
      await orders.fulfil(ref, { poolId: pool.id, nodeIds: kept.filter((n) => n.ordinal <= current.desired_nodes).map((n) => n.id) });
    });
  }

  /**
   * An engine away or failing on its side (5xx) is waited out like Postgres away: the drain
   * tries again. Only the engine's refusals end the order.
   */
  async function carryOutRetryingEngine(rec: DrainRecord, ref: OrderRef): Promise<void> {
    try {
      await carryOut(rec, ref);
    } catch (err) {
      // A node's Docker error arrives as an OrderFailure that names the node (see guardNode).
      for (let e: unknown = err; e instanceof Error; e = e.cause) {
        if (e instanceof DockerOpError && e.transient) throw new Error((err as Error).message, { cause: err });
      }
      throw err;
    }
  }

  async function run(rec: DrainRecord): Promise<void> {
    const ref: OrderRef = { orderId: rec.orderId ?? undefined, tenantId: rec.tenantId };
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      try {
        // An order that cannot be met ends failed; the drain is over either way.
        await orders.run(ref, `pool drain (${rec.kind})`, () => carryOutRetryingEngine(rec, ref));
        await store.remove(rec.tenantId, rec.id);
        return;
      } catch (err) {
        if (stopping.signal.aborted) return;
        if (err instanceof Rejection) {
          log.warn({ poolId: rec.poolId, reason: err.message }, 'drain without an order could not be carried out');
          await store.remove(rec.tenantId, rec.id).catch(() => undefined);
          return;
        }
        log.warn({ err, poolId: rec.poolId, attempt }, 'drain failed; trying again');
        await sleep(backoffDelay(REDELIVERY, attempt), undefined, { signal: stopping.signal }).catch(() => undefined);
        if (stopping.signal.aborted) return;
      }
    }
    log.warn({ poolId: rec.poolId, orderId: rec.orderId }, 'drain kept failing; the next reconciliation resumes it');
  }

  function start(rec: DrainRecord): void {
    const key = `${rec.tenantId}/${rec.id}`;
    if (running.has(key) || stopping.signal.aborted) return;
    const job = run(rec)
      .catch((err: unknown) => log.warn({ err, poolId: rec.poolId }, 'drain stopped'))
      .finally(() => running.delete(key));
    running.set(key, job);
  }

  return {
    async begin(pool, kind, reason, order, opts = {}) {
      if (!order?.orderId && (await store.list({ tenantId: pool.tenant_id, poolId: pool.id })).length > 0) return;
      // Before any Docker step: a delete that fails or stops halfway must leave a pool the
      // reconciler and the healer shrink, never one they bring back to its former size.
      if (kind === 'delete' && pool.status !== 'deleted' && pool.desired_nodes > 0) await repo.updatePoolSize(pool, pool.spec, 0);
      const rec = await store.add({
        tenantId: pool.tenant_id,
        id: order?.orderId ?? randomUUID(),
        poolId: pool.id,
        kind,
        orderId: order?.orderId ?? null,
        reason,
        deadline: new Date(Date.now() + drainMsOf(pool)),
        keepVolumes: opts.keepVolumes === true,
      });
      if (rec) start(rec);
    },
    async resume() {
      for (const rec of await store.list()) start(rec);
    },
    async deleting(pool) {
      return (await store.list({ tenantId: pool.tenant_id, poolId: pool.id })).some((r) => r.kind === 'delete');
    },
    async idle() {
      while (running.size) await Promise.all(running.values());
    },
    async stop() {
      stopping.abort(new Error('the manager is stopping'));
      while (running.size) await Promise.all(running.values());
    },
  };
}
