import { isIP } from 'node:net';
import Type from 'typebox';
import { CommonEnv, DatabaseEnv, env } from '@switchyard/config';

// An IP literal, not a host name: Docker binds published ports to HostIp as given, and a
// name would fail only at the first container start, far from the variable that caused it.
const ipAddress = (defaultValue: string) =>
  Type.Refine(
    Type.String({ description: 'an IP address such as 127.0.0.1', default: defaultValue }),
    (value: string) => isIP(value) !== 0,
    () => 'expected an IP address such as 127.0.0.1',
  );

export const ExitNodeManagerEnv = Type.Object({
  ...CommonEnv,
  ...DatabaseEnv,
  /** Image of exit pools whose spec names none; it must already be on the Docker host (never pulled). */
  EXIT_NODE_IMAGE: env.string({ minLength: 1, default: 'switchyard/exit-node:dev' }),
  /** Network of the exit pools that node.cmd.add creates ("start a node in JP"). */
  EXIT_NODE_NETWORK: env.enumOf(['bridge', 'host'], 'bridge'),
  /** The only host address node ports are published on; every client reaches nodes through it. */
  NODE_PUBLISH_HOST: ipAddress('127.0.0.1'),
  /** unix:///path or tcp://host:port; the local socket when unset. */
  DOCKER_HOST: Type.Optional(env.string({ minLength: 1 })),
  /** How often each running node's latest Docker stats sample goes to Redis and node.evt.stats. */
  STATS_INTERVAL_MS: env.int({ minimum: 100, maximum: 3_600_000, default: 5000 }),
  /** Restarts of a dead node's container before the next death replaces it with a new one. */
  HEAL_MAX_RESTARTS: env.int({ minimum: 0, maximum: 100, default: 3 }),
  /** Deaths further apart than this do not add up: a node that ran this long is healthy again. */
  HEAL_WINDOW_MS: env.int({ minimum: 1000, maximum: 86_400_000, default: 60_000 }),
  /** Delay before the first attempt to bring back a dead node; it doubles with each failure. */
  HEAL_BASE_DELAY_MS: env.int({ minimum: 0, maximum: 60_000, default: 500 }),
  /** base64 of 32 bytes, the api-gateway's own: opens pools' secretEnv into their containers' environment. */
  SECRETS_KEY: Type.Optional(env.string({ minLength: 1 })),
});
