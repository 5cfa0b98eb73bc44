import Type from 'typebox';
import { enumOf, int, string, url } from './fields.js';

/** A NATS user nkey seed: `SU` and 56 more base32 characters (what `nk -gen user` prints). */
const nkeySeed = () => Type.String({ pattern: '^SU[A-Z2-7]{56}$', description: 'a NATS user nkey seed (SU followed by 56 base32 characters)' });

export const CommonEnv = {
  NATS_URL: url(['nats'], { default: 'nats://127.0.0.1:4222' }),
  REDIS_URL: url(['redis', 'rediss'], { default: 'redis://127.0.0.1:6379' }),
  LOG_LEVEL: enumOf(['debug', 'info', 'warn', 'error'], 'info'),
  OTEL_EXPORTER_OTLP_ENDPOINT: Type.Optional(url(['http', 'https'])),
  SHUTDOWN_TIMEOUT_MS: int({ minimum: 0, default: 10_000 }),
  // The service's NATS identity (docs/security.md, "Service identities on NATS"): the seed of
  // its nkey, read from a file (mode 0600; what infra/start.sh and the tests give) or, where a
  // file is awkward, from the variable. Neither: the service connects without credentials.
  NATS_NKEY_SEED_FILE: Type.Optional(string({ minLength: 1 })),
  NATS_NKEY_SEED: Type.Optional(nkeySeed()),
};

export const DatabaseEnv = {
  // postgresql:// is what libpq tools print, so accept it while asking for the short form.
  DATABASE_URL: url(['postgres', 'postgresql'], {
    default: 'postgres://switchyard:switchyard@127.0.0.1:5432/switchyard',
    description: 'a postgres:// URL',
  }),
};

/** What the maxima default to; exit-node-manager's container spec holds nodes to them too. */
export const POOL_MAXIMA_DEFAULTS = Object.freeze({ memoryMb: 2048, cpus: 2, pids: 512 });

/** Docker's NanoCpus is a billionth of a CPU; a hundredth is as fine as a limit is useful. */
export const cpus = (defaultValue: number) => Type.Number({ minimum: 0.01, maximum: 1024, default: defaultValue, description: 'a number of CPUs such as 0.5 or 2' });

/**
 * The most any pool's node may use (pool.resources): the gateway refuses a request above
 * them and exit-node-manager clamps containers to them, so both read these variables.
 */
export const PoolMaximaEnv = {
  POOL_MAX_MEMORY_MB: int({ minimum: 16, maximum: 1_048_576, default: POOL_MAXIMA_DEFAULTS.memoryMb }),
  POOL_MAX_CPUS: cpus(POOL_MAXIMA_DEFAULTS.cpus),
  POOL_MAX_PIDS: int({ minimum: 16, maximum: 1_000_000, default: POOL_MAXIMA_DEFAULTS.pids }),
};
