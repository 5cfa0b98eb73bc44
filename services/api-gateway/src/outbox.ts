import { context } from '@opentelemetry/api';
import type { Logger } from 'pino';
import { randomUUID } from 'node:crypto';
import { backoffDelay, contextFromTraceparent, currentTraceparent, type Backoff, type Bus } from '@switchyard/bus';
import { ContractError, isSubject, type CommandSubject, type EventSubject, type Payload } from '@switchyard/contracts';
import { sql, type Kysely, type Transaction } from '@switchyard/db';
import { recordOrderEvent } from './orders/repository.js';
import type { Database } from './tables.js';

const BATCH = 100;
const KEEP_PUBLISHED = '1 day';

/**
 * Queues an event in the caller's transaction, under the trace of the current request: it goes
 * out (once committed) whatever happens next, a crash included.
 */
export async function enqueueEvent<S extends EventSubject>(tx: Transaction<Database>, tenantId: string, subject: S, payload: Payload<S>): Promise<void> {
  await tx
    .insertInto('outbox')
    .values({ tenant_id: tenantId, id: randomUUID(), subject, payload: JSON.stringify(payload), traceparent: currentTraceparent(), published_at: null })
    .execute();
}

export interface OutboxRelay {
  /** Publish now rather than at the next poll. */
  kick(): void;
  stop(): Promise<void>;
}

/**
 * Publishes outbox rows to JetStream in order, each with its row id as Nats-Msg-Id so a
 * row published twice (crash after publish, before marking it) is dropped by the stream.
 * Rows are locked with SKIP LOCKED, so several gateways can relay side by side.
 */
export function startOutboxRelay(deps: { db: Kysely<Database>; bus: Bus; log: Logger; pollMs: number }): OutboxRelay {
  const { db, bus, log, pollMs } = deps;
  let stopped = false;
  let wake: (() => void) | undefined;
  let kicked = false;

  async function publishBatch(): Promise<number> {
    return db.transaction().execute(async (tx) => {
      const rows = await tx
        .selectFrom('outbox')
        .select(['tenant_id', 'id', 'subject', 'payload', 'traceparent'])
        .where('published_at', 'is', null)
        .orderBy('seq')
        .limit(BATCH)
        .forUpdate()
        .skipLocked()
        .execute();
      for (const row of rows) {
        try {
          if (!isSubject(row.subject)) throw new ContractError(row.subject, [{ path: '', message: 'unknown subject' }]);
          const subject = row.subject as CommandSubject | EventSubject;
          // Publish under the trace of the request that wrote the row.
          await context.with(contextFromTraceparent(row.traceparent), () => bus.publish(subject, row.payload as Payload<typeof subject>, { msgId: row.id }));
        } catch (err) {
          if (!(err instanceof ContractError)) throw err;
          // A row no consumer could accept would block the outbox forever: park it.
          log.error({ err: err.message, id: row.id }, 'outbox row violates the contracts; dead-lettered');
          await bus.deadLetter(row.subject, new TextEncoder().encode(JSON.stringify(row.payload)), err.message, undefined, row.id);
          // Nobody will carry out the order it belongs to: it ends here, with the reason.
          const orderId = (row.payload as { orderId?: unknown } | null)?.orderId;
          if (typeof orderId === 'string') await recordOrderEvent(tx, row.tenant_id, orderId, { status: 'failed', reason: `not carried out: ${err.message}` });
        }
        await tx.updateTable('outbox').set({ published_at: new Date() }).where('tenant_id', '=', row.tenant_id).where('id', '=', row.id).execute();
      }
      return rows.length;
    });
  }

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  // After a failure: two polls, doubling up to 32 polls or 10 s, whichever is shorter.
  const retry: Backoff = { initialMs: 2 * pollMs, maxMs: Math.min(32 * pollMs, 10_000) };
  let failures = 0;
  let rounds = 0;
  const loop = (async () => {
    while (!stopped) {
      kicked = false;
      let published = 0;
      try {
        published = await publishBatch();
        if (failures) log.info('outbox relay recovered');
        failures = 0;
        if (++rounds % 1000 === 0) {
          await sql`delete from outbox where published_at < now() - ${sql.raw(`interval '${KEEP_PUBLISHED}'`)}`.execute(db);
        }
      } catch (err) {
        failures++;
        if (failures === 1 || failures % 20 === 0) log.warn({ err: (err as Error).message, failures }, 'outbox relay cannot publish yet');
      }
      if (stopped) break;
      if (published === BATCH && !failures) continue;
      if (kicked && !failures) continue;
      await sleep(failures ? backoffDelay(retry, failures) : pollMs);
    }
  })();

  return {
    kick() {
      kicked = true;
      wake?.();
    },
    async stop() {
      stopped = true;
      wake?.();
      await loop;
    },
  };
}
