import type { Logger } from 'pino';
import type { Kysely } from '@switchyard/db';
import { Resync } from '@switchyard/service-kit';
import type { Database } from '../tables.js';
import { IDEMPOTENCY_TTL_MS, sweepExpiredKeys } from './store.js';

/** Records deleted per sweep; a full batch asks for the next sweep at once. */
const BATCH = 500;
/** Expired records only cost space (a claim takes an expired key over by itself), so sweeping is unhurried. */
const PERIOD_MS = 10 * 60_000;

/** Deletes Idempotency-Key records older than IDEMPOTENCY_TTL_MS, a bounded batch at a time. */
export function startIdempotencySweeper(deps: { db: Kysely<Database>; log: Pick<Logger, 'info' | 'warn'>; onShutdown: (step: () => Promise<void>) => void }): Resync {
  const { db, log } = deps;
  const sweeper: Resync = new Resync(
    async () => {
      const swept = await sweepExpiredKeys(db, IDEMPOTENCY_TTL_MS, BATCH);
      if (swept === BATCH) sweeper.request();
      if (swept) log.info({ swept }, `removed ${swept} expired Idempotency-Key record(s)`);
    },
    {
      periodMs: PERIOD_MS,
      onError: (err, failures) => (failures === 1 || failures % 20 === 0 ? log.warn({ err: err.message, failures }, 'could not sweep expired Idempotency-Keys') : undefined),
    },
  );
  deps.onShutdown(() => sweeper.stop());
  sweeper.request();
  return sweeper;
}
