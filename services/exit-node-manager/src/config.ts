import { isIP } from 'node:net';
import Type, { type Static } from 'typebox';
import { CommonEnv, cpus, DatabaseEnv, env, PoolMaximaEnv } from '@switchyard/config';
import { DEFAULT_RESOURCE_POLICY, type ResourcePolicy } from './container-spec.js';

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
  /**
   * FIREWALL_OUTBOUND_SUBNETS of every node (gluetun's variable, which the exit-node
   * image reads too): networks its proxy may reach outside the VPN. Set by the operator for
   * all pools, app pools too; a pool's own env cannot open more. Empty: none (production).
   */
  EXIT_NODE_OUTBOUND_SUBNETS: env.string({ default: '' }),
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
  // What a node may use (see nodeResources): the defaults of a pool that asks for nothing, and
  // the most any pool gets whatever it asks. The gateway refuses requests above the same
  // POOL_MAX_* values; this manager clamps to them as well.
  POOL_DEFAULT_MEMORY_MB: env.int({ minimum: 16, maximum: 1_048_576, default: DEFAULT_RESOURCE_POLICY.defaults.memoryMb }),
  POOL_DEFAULT_CPUS: cpus(DEFAULT_RESOURCE_POLICY.defaults.cpus),
  POOL_DEFAULT_PIDS: env.int({ minimum: 16, maximum: 1_000_000, default: DEFAULT_RESOURCE_POLICY.defaults.pids }),
  ...PoolMaximaEnv,
  /** base64 of 32 bytes, the api-gateway's own: opens pools' secretEnv into their containers' environment. */
  SECRETS_KEY: Type.Optional(env.string({ minLength: 1 })),
});

export type ExitNodeManagerConfig = Static<typeof ExitNodeManagerEnv>;

/** The resource policy of the config; a default above its maximum is held to the maximum. */
export function resourcePolicy(config: ExitNodeManagerConfig): ResourcePolicy {
  const maxima = { memoryMb: config.POOL_MAX_MEMORY_MB, cpus: config.POOL_MAX_CPUS, pids: config.POOL_MAX_PIDS };
  return {
    maxima,
    defaults: {
      memoryMb: Math.min(config.POOL_DEFAULT_MEMORY_MB, maxima.memoryMb),
      cpus: Math.min(config.POOL_DEFAULT_CPUS, maxima.cpus),
      pids: Math.min(config.POOL_DEFAULT_PIDS, maxima.pids),
    },
  };
}
