import { isIP } from 'node:net';
import Type from 'typebox';
import { CommonEnv, DatabaseEnv, env, isNetworkList } from '@switchyard/config';

// IP literals, not host names: the nft rule and the bound sockets need addresses.
const ipv4 = (defaultValue: string, description: string) =>
  Type.Refine(
    Type.String({ description, default: defaultValue }),
    (value: string) => isIP(value) === 4,
    () => `expected an IPv4 address such as ${defaultValue}`,
  );

export const SocketActivatorEnv = Type.Object({
  ...CommonEnv,
  ...DatabaseEnv,
  /** nftables: sleeping ports are redirected to the activator (Linux, CAP_NET_ADMIN); proxy: clients use the activator's public ports. */
  ACTIVATOR_MODE: env.enumOf(['nftables', 'proxy'], 'nftables'),
  /** Where redirected connections arrive (nftables mode). */
  ACTIVATOR_LISTEN_HOST: ipv4('127.0.0.1', 'an IPv4 address such as 127.0.0.1'),
  ACTIVATOR_LISTEN_PORT: env.port(9700),
  /** The activator's own nftables table (ip family); kept on shutdown so sleeping nodes stay catchable. */
  ACTIVATOR_NFT_TABLE: Type.String({
    pattern: '^[A-Za-z][A-Za-z0-9_]{0,31}$',
    description: 'an nftables table name: a letter, then letters, digits or _ (at most 32)',
    default: 'switchyard',
  }),
  /** The activator's probes and forwarded connections leave from here, so the redirect rule skips them. */
  ACTIVATOR_SOURCE_ADDRESS: Type.Refine(
    Type.String({ description: 'an IPv4 loopback address other than 127.0.0.1, such as 127.0.0.2', default: '127.0.0.2' }),
    (value: string) => isIP(value) === 4 && value.startsWith('127.') && value !== '127.0.0.1',
    () => 'expected an IPv4 loopback address other than 127.0.0.1, such as 127.0.0.2',
  ),
  /** Proxy mode: the address of the public port the activator owns for each node port. */
  ACTIVATOR_PUBLIC_HOST: ipv4('127.0.0.1', 'an IPv4 address such as 127.0.0.1'),
  /**
   * A probe counts as ready when its connection is accepted and not closed within this long
   * (or data arrives): Docker's userland proxy accepts before the app listens, then closes.
   */
  ACTIVATOR_PROBE_SETTLE_MS: env.int({ minimum: 0, maximum: 1000, default: 10 }),
  /** A forwarded connection's dial to the node fails after this long (a silent SYN drop otherwise waits minutes). */
  ACTIVATOR_CONNECT_TIMEOUT_MS: env.int({ minimum: 10, maximum: 60_000, default: 3000 }),
  /** Once one side of a forwarded connection ended, the other direction gets this long before both close. */
  ACTIVATOR_HALF_CLOSE_TIMEOUT_MS: env.int({ minimum: 10, maximum: 3_600_000, default: 60_000 }),
  /**
   * Addresses whose connections a front door that enforces the ACL policies already judged
   * (the load balancer's, which dials a sleeping node's port for its clients): not judged again,
   * since here they carry the load balancer's address and no user. Comma-separated CIDRs; empty:
   * every connection is judged.
   */
  ACTIVATOR_ACL_TRUSTED_SOURCES: Type.Refine(
    Type.String({ description: 'comma-separated CIDRs, e.g. 10.0.0.5/32', default: '' }),
    isNetworkList,
    () => 'expected comma-separated CIDRs such as 10.0.0.5/32 or 127.0.0.1/32',
  ),
  /** Prometheus /metrics on ACTIVATOR_LISTEN_HOST; 0 = off. */
  ACTIVATOR_METRICS_PORT: env.int({ minimum: 0, maximum: 65535, default: 0 }),
});
