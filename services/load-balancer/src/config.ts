import { availableParallelism } from 'node:os';
import Type from 'typebox';
import { CommonEnv, env, parseNetworks } from '@switchyard/config';
import { parseClientRegions, parseCountryPorts, parseProxyUsers, STRATEGIES } from './settings.js';

// A list variable is checked by the parser that later reads it, so the start-up error and
// the runtime meaning cannot disagree.
const listOf = (description: string, parse: (value: string) => unknown) =>
  Type.Refine(
    Type.String({ description, default: '' }),
    (value: string) => {
      try {
        parse(value);
        return true;
      } catch {
        return false;
      }
    },
    () => description,
  );

export const LoadBalancerEnv = Type.Object({
  ...CommonEnv,
  LB_LISTEN_HOST: env.string({ minLength: 1, default: '127.0.0.1' }),
  /** HTTP proxy and SOCKS5 on one port; the pool comes from the username's country. */
  LB_PROXY_PORT: env.port(1080),
  /** "JP=18001,US=18002": one proxy port per country. */
  LB_COUNTRY_PORTS: listOf('COUNTRY=port pairs separated by commas, e.g. JP=18001,US=18002', parseCountryPorts),
  /** "alice:secret@<tenantId>,…"; empty means no authentication (development). */
  LB_PROXY_USERS: listOf('user:password@tenantId entries separated by commas', parseProxyUsers),
  /** With no proxy user configured, serve exit pools to anyone anyway (development only). */
  LB_OPEN_PROXY: env.bool(false),
  /** Networks no client may reach through an exit pool, on top of the built-in list (destinations.ts). */
  LB_DENIED_NETWORKS: listOf('IP networks (address/prefix) separated by commas, e.g. 10.20.0.0/16,fd00::/8', parseNetworks),
  /** Networks exempted from the built-in list (not from LB_DENIED_NETWORKS): development and tests. */
  LB_ALLOWED_NETWORKS: listOf('IP networks (address/prefix) separated by commas, e.g. 127.0.0.1/32', parseNetworks),
  /** Open proxy-port connections from one client address, per worker process. */
  LB_MAX_CONNECTIONS_PER_CLIENT: env.int({ minimum: 1, maximum: 1_000_000, default: 256 }),
  /** A proxied connection with no byte either way for this long is closed. */
  LB_IDLE_TIMEOUT_MS: env.int({ minimum: 1000, maximum: 86_400_000, default: 300_000 }),
  /** Bytes read from a client before its node answers; beyond them the client is paused. */
  LB_MAX_BUFFERED_BYTES: env.int({ minimum: 17 * 1024, maximum: 64 * 1024 * 1024, default: 64 * 1024 }),
  /** "10.0.0.0/8=eu-west,…": the client's region by source address, for geographic affinity. */
  LB_CLIENT_REGIONS: listOf('CIDR=region entries separated by commas, e.g. 10.0.0.0/8=eu-west', parseClientRegions),
  LB_CONNECT_RETRIES: env.int({ minimum: 0, maximum: 10, default: 2 }),
  LB_CONNECT_TIMEOUT_MS: env.int({ minimum: 10, maximum: 60_000, default: 3000 }),
  /** Bound on a client's handshake (greeting, credentials, request head). */
  LB_HANDSHAKE_TIMEOUT_MS: env.int({ minimum: 10, maximum: 120_000, default: 10_000 }),
  /** Bound on an absolute-form request's wait for the node's first answer byte (then 504). */
  LB_FIRST_BYTE_TIMEOUT_MS: env.int({ minimum: 10, maximum: 3_600_000, default: 60_000 }),
  /** After one side of a proxied connection ended (FIN), how long the other direction may go on. */
  LB_HALF_CLOSE_TIMEOUT_MS: env.int({ minimum: 10, maximum: 3_600_000, default: 60_000 }),
  LB_DEFAULT_STRATEGY: env.enumOf(STRATEGIES, 'round_robin'),
  /**
   * One core is left to everything else on the host (the nodes behind the balancer, its
   * clients): on 2 cores, two workers moved 3.3 Gbit/s in bench/lb-throughput.ts where one
   * moved 7.4. Each worker holds at most ~9,000 proxied connections (20,000 open files per
   * process), so hosts that hold more connections need more workers.
   */
  LB_WORKERS: env.int({ minimum: 1, maximum: 64, default: Math.max(1, Math.min(4, availableParallelism() - 1)) }),
  /**
   * shared: every worker accepts from the one listening socket (the kernel spreads them; in
   * bench/lb-connections.ts 50,000 connections left 15.8k-17.8k files per worker of six).
   * primary: the primary accepts and hands each connection to the next worker (an exact
   * spread, but about 0.6 ms more per connection and half the bulk throughput).
   */
  LB_ACCEPT: env.enumOf(['primary', 'shared'], 'shared'),
  /**
   * V8 young generation (semi-space) of each worker, in MiB. Small keeps many idle connections
   * cheap (2 saves ~130 MiB over six workers holding 50,000); large keeps bulk transfer fast.
   */
  LB_WORKER_SEMI_SPACE_MB: env.int({ minimum: 1, maximum: 256, default: 16 }),
  /** How often health scores and latencies (for health_score and weighted_latency) are re-read. */
  LB_SCORE_REFRESH_MS: env.int({ minimum: 100, maximum: 600_000, default: 2000 }),
  LB_REBUILD_INTERVAL_MS: env.int({ minimum: 100, maximum: 3_600_000, default: 30_000 }),
  LB_FLUSH_INTERVAL_MS: env.int({ minimum: 50, maximum: 60_000, default: 1000 }),
});
