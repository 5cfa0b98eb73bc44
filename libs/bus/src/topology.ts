import { AckPolicy, DeliverPolicy, JetStreamApiCodes, JetStreamApiError, RetentionPolicy, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { ConsumerDef, StreamDef } from '@switchyard/contracts';

function isNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && (err.code === JetStreamApiCodes.StreamNotFound || err.code === JetStreamApiCodes.ConsumerNotFound);
}

/** Creates the stream, or brings an existing one to the definition. */
export async function ensureStream(jsm: JetStreamManager, def: StreamDef): Promise<void> {
  const config = {
    name: def.name,
    subjects: [...def.subjects],
    max_age: nanos(def.maxAgeMs),
    duplicate_window: nanos(def.duplicateWindowMs),
    description: def.description,
  };
  try {
    await jsm.streams.info(def.name);
    await jsm.streams.update(def.name, config);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await jsm.streams.add({
      ...config,
      retention: def.retention === 'workqueue' ? RetentionPolicy.Workqueue : RetentionPolicy.Limits,
      storage: StorageType.File,
    });
  }
}

export async function ensureConsumer(jsm: JetStreamManager, def: ConsumerDef): Promise<void> {
  const mutable = {
    ...(def.filter ? { filter_subject: def.filter } : {}),
    ack_wait: nanos(def.ackWaitMs),
    max_ack_pending: def.maxAckPending,
    // Unlimited on the server: the bus itself dead-letters at def.maxDeliver, so a message
    // is never left undeliverable in the stream.
    max_deliver: -1,
  };
  try {
    await jsm.consumers.info(def.stream, def.durable);
    await jsm.consumers.update(def.stream, def.durable, mutable);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await jsm.consumers.add(def.stream, {
      ...mutable,
      durable_name: def.durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
    });
  }
}
