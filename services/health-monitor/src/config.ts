import Type from 'typebox';
import { CommonEnv, env } from '@switchyard/config';
import { PUBLIC_SPEEDTEST_URL } from './speedtest.js';

export const HealthMonitorEnv = Type.Object({
  ...CommonEnv,
  /** What the default check of an exit pool (and a proxy check without a target) fetches through the node. */
  HEALTH_PROXY_TARGET: env.url(['http', 'https'], { default: 'http://www.gstatic.com/generate_204' }),
  /** The node set is rebuilt from pool.req.snapshot this often, besides at start and on reconnect. */
  HEALTH_RESYNC_MS: env.int({ minimum: 1000, default: 30_000 }),
  /** Connection failures the load balancer must report within the window to mark a node down. */
  HEALTH_CONNFAIL_LIMIT: env.int({ minimum: 1, maximum: 100, default: 2 }),
  HEALTH_CONNFAIL_WINDOW_MS: env.int({ minimum: 1, default: 2000 }),
  /** Checks in flight at once; more wait a moment (bounds open sockets). */
  HEALTH_MAX_INFLIGHT: env.int({ minimum: 1, maximum: 15_000, default: 4000 }),
  /**
   * Base URL of the speed-test server (GET /204, GET /download?bytes=N, POST /upload), or the
   * default: Tele2's public server, for hosts on the Internet. Tests set a server on 127.0.0.1.
   */
  SPEEDTEST_URL: env.url(['http'], { default: PUBLIC_SPEEDTEST_URL }),
  /** Bytes downloaded and uploaded by one speed test. */
  SPEEDTEST_BYTES: env.int({ minimum: 1024, maximum: 1_000_000_000, default: 10_000_000 }),
  SPEEDTEST_TIMEOUT_MS: env.int({ minimum: 100, maximum: 120_000, default: 20_000 }),
});
