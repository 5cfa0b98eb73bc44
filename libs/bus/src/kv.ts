import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { KvBucketName } from '@switchyard/contracts';

/** A NATS KV bucket read into memory and kept current by a watch: reads never leave the process. */
export interface WatchedMap<V extends string> {
  get(key: string): V | undefined;
  /** Stores durably, and in memory at once (the watch confirms it later). */
  set(key: string, value: V): Promise<void>;
  stop(): Promise<void>;
}

export interface WatchedMapOptions<V extends string> {
  /** Values that fail this are left out of the map and reported. */
  readonly accept: (value: string) => value is V;
  readonly onRejected: (key: string, value: string) => void;
  readonly onWatchEnded: (err: unknown) => void;
  /** How long opening waits for the stored entries before it serves what it has. */
  readonly loadTimeoutMs?: number;
}

/**
 * Opens (creating if missing) a bucket that every process of a service watches, so a change
 * made through any one of them applies in all. Buckets are declared in the contracts
 * (KV_BUCKETS), which give their owner's NATS identity, and only it, access.
 */
export async function openWatchedMap<V extends string>(nc: NatsConnection, bucket: KvBucketName, opts: WatchedMapOptions<V>): Promise<WatchedMap<V>> {
  const kv: KV = await new Kvm(nc).create(bucket, { history: 1 });
  const known = new Map<string, V>();
  const stored = (await kv.status()).values;
  const watcher = await kv.watch();
  let initial: () => void = () => undefined;
  const loaded = new Promise<void>((resolve) => (initial = resolve));
  const done = (async () => {
    for await (const e of watcher) {
      if (e.operation === 'PUT') {
        const value = e.string();
        if (opts.accept(value)) known.set(e.key, value);
        else opts.onRejected(e.key, value);
      } else {
        known.delete(e.key);
      }
      // delta counts the stored entries still to come: 0 on the last one.
      if (e.isUpdate || e.delta === 0) initial();
    }
  })();
  done.catch(opts.onWatchEnded);
  if (stored > 0) await Promise.race([loaded, new Promise((r) => setTimeout(r, opts.loadTimeoutMs ?? 2000).unref())]);
  return {
    get: (key) => known.get(key),
    async set(key, value) {
      await kv.put(key, value);
      known.set(key, value);
    },
    async stop() {
      watcher.stop();
      await done.catch(() => undefined);
    },
  };
}
