import Type from 'typebox';
import { CommonEnv, DatabaseEnv, env } from '@switchyard/config';

/**
 * One service, three roles (docs/tunnels.md): `single`, this host is the edge and every node's
 * host at once; `edge`, the endpoints, the edge's sshd and WireGuard, the tables; `node`, the
 * agent on a node host: its WireGuard end, listeners and ssh clients, no database.
 */
export const TunnelManagerEnv = Type.Object({
  ...CommonEnv,
  ...DatabaseEnv,
  TUNNEL_ROLE: env.enumOf(['single', 'edge', 'node'], 'single'),
  /**
   * node: this host's id, as the edge knows it. edge: the id of the agent on the node host
   * (one Docker host today, so one agent serves every node; see docs/tunnels.md). Required in
   * both roles, with no default: two agents must never share one by mistake.
   */
  TUNNEL_HOST_ID: Type.Optional(env.string({ minLength: 1 })),
  /** edge: the private range of the WireGuard links' addresses (the edge takes the first). */
  TUNNEL_WG_RANGE: env.string({ minLength: 9, default: '10.99.0.0/24' }),
  /** edge: the host pair's WireGuard key is rotated this often (every tunnel over the link shares it). */
  TUNNEL_WG_ROTATE_HOURS: env.int({ minimum: 1, maximum: 24 * 90, default: 168 }),
  /** The UDP port this host's WireGuard listens on. */
  TUNNEL_WG_PORT: env.port(51820),
  /** edge: host:port node hosts reach its WireGuard at; TUNNEL_EDGE_HOST:TUNNEL_WG_PORT unless given. */
  TUNNEL_WG_ENDPOINT: Type.Optional(env.string({ minLength: 3 })),
  /**
   * node: comma-separated addresses, besides loopback, that node ports are published on here
   * (exit-node-manager's NODE_PUBLISH_HOST when it is not 127.0.0.1): the only other addresses
   * the agent dials for the edge.
   */
  TUNNEL_PUBLISH_ADDRESSES: env.string({ default: '' }),
  /** edge: where its sshd listens for node hosts' sessions (loopback in single-host mode). */
  TUNNEL_SSH_HOST: env.string({ minLength: 1, default: '127.0.0.1' }),
  /** edge: the address node hosts dial its sshd at, when it differs from TUNNEL_SSH_HOST (a NAT). */
  TUNNEL_SSH_PUBLIC_HOST: Type.Optional(env.string({ minLength: 1 })),
  /** Where tunnel endpoints listen: the edge's address clients reach. */
  TUNNEL_EDGE_HOST: env.string({ minLength: 1, default: '127.0.0.1' }),
  /** What clients are told to dial, when it differs from where endpoints listen (a NAT, a DNS name). */
  TUNNEL_EDGE_PUBLIC_HOST: Type.Optional(env.string({ minLength: 1 })),
  /** The endpoints' ports are taken from this range, lowest free first. */
  TUNNEL_PORT_MIN: env.port(42000),
  TUNNEL_PORT_MAX: env.port(42999),
  /** The edge's sshd, on loopback: the SSH paths' sessions arrive here. Outside both port ranges. */
  TUNNEL_SSH_PORT: env.port(41999),
  /** The edge-loopback ports SSH sessions forward (one per key, a new one each rotation). */
  TUNNEL_SSH_FORWARD_MIN: env.port(43000),
  TUNNEL_SSH_FORWARD_MAX: env.port(43999),
  /** Root-owned, not under /tmp (sshd's rule for its AuthorizedKeysCommand): the edge's sshd and the nodes' private keys. */
  TUNNEL_STATE_DIR: env.string({ default: '/run/switchyard/tunnel-manager' }),
  /** The accounts of infra/tunnel-users.sh. */
  TUNNEL_SSH_USER: env.string({ default: 'switchyard-tunnel' }),
  TUNNEL_KEYS_USER: env.string({ default: 'switchyard-keys' }),
  /**
   * Comma-separated IPv4 addresses of node hosts on the operator's network: the only addresses a
   * `direct` path may name (a tenant must not aim the edge at any address it likes).
   */
  TUNNEL_DIRECT_ADDRESSES: env.string({ minLength: 1, default: '127.0.0.1' }),
  /** Tunnels one tenant may hold: the port ranges are shared by every tenant. */
  TUNNEL_MAX_PER_TENANT: env.int({ minimum: 1, maximum: 10_000, default: 20 }),
  /** A rotation asked for sooner than this after the last one is refused. */
  TUNNEL_ROTATE_MIN_INTERVAL_MS: env.int({ minimum: 0, maximum: 86_400_000, default: 60_000 }),
  /** The first wait before an ended SSH session is started again (doubling to 30 s). */
  TUNNEL_SSH_RETRY_MS: env.int({ minimum: 50, maximum: 60_000, default: 500 }),
  /** How often keys are checked for their rotation and expiry. */
  TUNNEL_KEY_CHECK_MS: env.int({ minimum: 100, maximum: 3_600_000, default: 60_000 }),
  /** How long a rotated-out key stays valid for the connections its session still carries. */
  TUNNEL_KEY_OVERLAP_MS: env.int({ minimum: 1000, maximum: 86_400_000, default: 600_000 }),
  /** Nodes' ports are re-read from pool.req.snapshot this often, besides at start and on reconnect. */
  TUNNEL_RESYNC_MS: env.int({ minimum: 1000, maximum: 3_600_000, default: 30_000 }),
});
