import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { BalancingStrategy } from '@switchyard/contracts';
import type { Logger } from 'pino';
import type { StrategySource } from './router.js';
import { STRATEGIES } from './settings.js';

export const STRATEGY_BUCKET = 'lb-strategies';

export interface StrategyStore extends StrategySource {
  set(tenantId: string, strategy: BalancingStrategy): Promise<void>;
  stop(): Promise<void>;
}

const isStrategy = (s: string): s is BalancingStrategy => (STRATEGIES as readonly string[]).includes(s);

/**
 * Tenants' default strategies in a NATS KV bucket (durable in JetStream), watched so every
 * load-balancer process applies a change made through any one of them.
 */
export async function openStrategyStore(nc: NatsConnection, log: Logger): Promise<StrategyStore> {
  const kv: KV = await new Kvm(nc).create(STRATEGY_BUCKET, { history: 1 });
  const known = new Map<string, BalancingStrategy>();
  const stored = (await kv.status()).values;
  const watcher = await kv.watch();
  let initial: () => void = () => undefined;
  const loaded = new Promise<void>((resolve) => (initial = resolve));
  const done = (async () => {
    for await (const e of watcher) {
      if (e.operation === 'PUT') {
        const value = e.string();
        if (isStrategy(value)) known.set(e.key, value);
        else log.warn({ tenantId: e.key, value }, 'ignoring an unknown strategy in the bucket');
      } else {
        known.delete(e.key);
      }
      // delta counts the stored entries still to come: 0 on the last one.
      if (e.isUpdate || e.delta === 0) initial();
    }
  })();
  done.catch((err: unknown) => log.error({ err }, 'strategy watch ended'));
  if (stored > 0) await Promise.race([loaded, new Promise((r) => setTimeout(r, 2000).unref())]);
  return {
    get: (tenantId) => known.get(tenantId),
    async set(tenantId, strategy) {
      await kv.put(tenantId, strategy);
      known.set(tenantId, strategy);
    },
    async stop() {
      watcher.stop();
      await done.catch(() => undefined);
    },
  };
}
