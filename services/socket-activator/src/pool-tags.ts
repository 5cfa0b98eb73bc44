import type { PoolView } from '@switchyard/contracts';

/**
 * The tags of every pool, which an ACL policy names its destinations by: from the pool
 * snapshot the activator rebuilds from, kept current by `pool.evt.changed` and
 * `pool.evt.deleted`. Until the first snapshot the activator cannot tell a pool's tags.
 */
export class PoolTags {
  private readonly byPool = new Map<string, readonly string[]>();
  private isLoaded = false;

  get loaded(): boolean {
    return this.isLoaded;
  }

  /** A pool not heard of (its event missed) has none; the next rebuild repairs it. */
  of(poolId: string): readonly string[] {
    return this.byPool.get(poolId) ?? [];
  }

  replace(pools: readonly Pick<PoolView, 'poolId' | 'spec'>[]): void {
    this.byPool.clear();
    for (const p of pools) this.set(p);
    this.isLoaded = true;
  }

  set(p: Pick<PoolView, 'poolId' | 'spec'>): void {
    this.byPool.set(p.poolId, p.spec.tags ?? []);
  }

  delete(poolId: string): void {
    this.byPool.delete(poolId);
  }
}
