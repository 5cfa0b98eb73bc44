import Type from 'typebox';
import { CommonEnv, DatabaseEnv, env } from '@switchyard/config';

/**
 * One host is both the edge and every node's host (single-host mode, see docs/tunnels.md):
 * endpoints, the edge's sshd and the nodes' ssh clients all run here.
 */
export const TunnelManagerEnv = Type.Object({
  ...CommonEnv,
  ...DatabaseEnv,
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
