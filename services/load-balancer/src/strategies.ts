import { openWatchedMap } from '@switchyard/bus';
import type { BalancingStrategy, KvBucketName } from '@switchyard/contracts';
import type { ServiceContext } from '@switchyard/service-kit';
import type { StrategySource } from './router.js';
import { STRATEGIES } from './settings.js';

export const STRATEGY_BUCKET: KvBucketName = 'lb-strategies';

export interface StrategyStore extends StrategySource {
  set(tenantId: string, strategy: BalancingStrategy): Promise<void>;
  stop(): Promise<void>;
}

const isStrategy = (s: string): s is BalancingStrategy => (STRATEGIES as readonly string[]).includes(s);

/**
 * Tenants' default strategies in a NATS KV bucket (durable in JetStream), watched so every
 * load-balancer process applies a change made through any one of them.
 */
export function openStrategyStore(nc: ServiceContext<unknown>['nc'], log: ServiceContext<unknown>['log']): Promise<StrategyStore> {
  return openWatchedMap(nc, STRATEGY_BUCKET, {
    accept: isStrategy,
    onRejected: (tenantId, value) => log.warn({ tenantId, value }, 'ignoring an unknown strategy in the bucket'),
    onWatchEnded: (err) => log.error({ err }, 'strategy watch ended'),
  });
}
