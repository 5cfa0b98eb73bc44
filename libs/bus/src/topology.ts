import { AckPolicy, DeliverPolicy, DiscardPolicy, JetStreamApiCodes, JetStreamApiError, RetentionPolicy, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { ConsumerDef, StreamDef } from '@switchyard/contracts';

/** JSStreamNameExistErr: a stream of that name exists with another configuration (nats.js names no constant for it). */
const STREAM_NAME_IN_USE = 10058;

function isNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && (err.code === JetStreamApiCodes.StreamNotFound || err.code === JetStreamApiCodes.ConsumerNotFound);
}

/**
 * The whole configuration of a stream as its definition has it. An update from nats.js merges
 * into the current configuration, so every field a hostile create could have set (sources,
 * republish, limits that amount to a purge) is named here, and the owner's update resets it.
 */
function streamConfig(def: StreamDef) {
  return {
    name: def.name,
    subjects: [...def.subjects],
    max_age: nanos(def.maxAgeMs),
    duplicate_window: nanos(def.duplicateWindowMs),
    description: def.description,
    max_msgs: -1,
    max_bytes: -1,
    max_msgs_per_subject: -1,
    max_msg_size: -1,
    discard: DiscardPolicy.Old,
    sources: undefined,
    mirror: undefined,
    republish: undefined,
  };
}

/**
 * Creates the stream when it is missing. Its owner (`def.owner`) also brings an existing one to
 * the definition; any other service leaves an existing stream as it is: its NATS identity may
 * not update it, and a create of an existing stream with another configuration is refused.
 */
export async function ensureStream(jsm: JetStreamManager, def: StreamDef, opts: { owner: boolean }): Promise<void> {
  const config = streamConfig(def);
  try {
    await jsm.streams.info(def.name);
    if (opts.owner) await jsm.streams.update(def.name, config);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    try {
      await jsm.streams.add({
        ...config,
        retention: def.retention === 'workqueue' ? RetentionPolicy.Workqueue : RetentionPolicy.Limits,
        storage: StorageType.File,
      });
    } catch (addErr) {
      // Another service created it in between: the same definition, or its owner's to fix.
      if (!(addErr instanceof JetStreamApiError && addErr.code === STREAM_NAME_IN_USE)) throw addErr;
      if (opts.owner) await jsm.streams.update(def.name, config);
    }
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
