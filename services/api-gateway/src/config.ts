import Type from 'typebox';
import { CommonEnv, DatabaseEnv, env } from '@switchyard/config';

export const ApiGatewayEnv = Type.Object({
  ...CommonEnv,
  ...DatabaseEnv,
  API_HOST: env.string({ default: '127.0.0.1' }),
  API_PORT: env.port(8080),
  ADMIN_API_KEY: env.string({ minLength: 24 }),
  ADMIN_TENANT_NAME: env.string({ default: 'admin' }),
  OUTBOX_POLL_MS: env.int({ minimum: 10, maximum: 60_000, default: 500 }),
});
export type ApiGatewayConfig = Type.Static<typeof ApiGatewayEnv>;
