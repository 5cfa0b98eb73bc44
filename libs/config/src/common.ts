import Type from 'typebox';
import { enumOf, int, url } from './fields.js';

export const CommonEnv = {
  NATS_URL: url(['nats'], { default: 'nats://127.0.0.1:4222' }),
  REDIS_URL: url(['redis', 'rediss'], { default: 'redis://127.0.0.1:6379' }),
  LOG_LEVEL: enumOf(['debug', 'info', 'warn', 'error'], 'info'),
  OTEL_EXPORTER_OTLP_ENDPOINT: Type.Optional(url(['http', 'https'])),
  SHUTDOWN_TIMEOUT_MS: int({ minimum: 0, default: 10_000 }),
};

export const DatabaseEnv = {
  // postgresql:// is what libpq tools print, so accept it while asking for the short form.
  DATABASE_URL: url(['postgres', 'postgresql'], {
    default: 'postgres://switchyard:switchyard@127.0.0.1:5432/switchyard',
    description: 'a postgres:// URL',
  }),
};
