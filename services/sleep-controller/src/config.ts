import Type from 'typebox';
import { CommonEnv, DatabaseEnv, env } from '@switchyard/config';

export const SleepControllerEnv = Type.Object({
  ...CommonEnv,
  ...DatabaseEnv,
  /** Idleness is evaluated this often at most (more often when a policy's window is short: window/4). */
  SLEEP_TICK_MS: env.int({ minimum: 50, maximum: 60_000, default: 1000 }),
  /**
   * A node whose last stats sample is older than this cannot be judged idle: it is left awake.
   * Three of exit-node-manager's default sampling periods (STATS_INTERVAL_MS, 5 s), so one
   * late sample does not stall a decision; lower it with that interval.
   */
  SLEEP_STATS_STALE_MS: env.int({ minimum: 100, maximum: 600_000, default: 15_000 }),
  /** How long the socket activator has to answer an arm request. */
  SLEEP_ARM_TIMEOUT_MS: env.int({ minimum: 100, maximum: 60_000, default: 2000 }),
  /** After a failed attempt to put an idle node to sleep (arm refused, no answer), wait this long before the next. */
  SLEEP_RETRY_MS: env.int({ minimum: 100, maximum: 3_600_000, default: 10_000 }),
  /** Pools, nodes and policies are rebuilt from pool.req.snapshot this often, besides at start and on reconnect. */
  SLEEP_RESYNC_MS: env.int({ minimum: 1000, maximum: 3_600_000, default: 30_000 }),
});
