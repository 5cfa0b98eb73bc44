import type { Generated, Selectable } from '@switchyard/db';
import type { TunnelSpec } from '@switchyard/contracts';

interface TunnelTable {
  tenant_id: string;
  id: string;
  name: string;
  /** A node's tunnel; null for a pool's. */
  node_id: string | null;
  /** A pool's tunnel; null for a node's. */
  pool_id: string | null;
  spec: TunnelSpec;
  public_port: number;
  created_at: Generated<Date>;
  rotated_at: Generated<Date>;
}

interface TunnelKeyTable {
  tenant_id: string;
  tunnel_id: string;
  /** `<tunnel id>.ssh.<n>`: the private key's file name on the node's host. */
  key_id: string;
  path: 'ssh';
  public_key: string;
  fingerprint: string;
  listen_port: number;
  created_at: Date;
  valid_until: Date;
  superseded_at: Date | null;
  revoked_at: Date | null;
}

interface TunnelPathTable {
  tenant_id: string;
  tunnel_id: string;
  kind: 'wireguard' | 'ssh' | 'direct';
  state: 'up' | 'down' | 'unknown';
  latency_ms: number | null;
  reason: string | null;
  changed_at: Date | null;
}

interface TunnelHostTable {
  host_id: string;
  /** Its address on the WireGuard links: linkAddress(TUNNEL_WG_RANGE, link_index); the edge is 1. */
  link_index: number;
  wireguard_public_key: string | null;
  wireguard_next_key: string | null;
  rotate_wanted_at: Date | null;
  wireguard_rotated_at: Date | null;
  seen_at: Date | null;
}

export interface Database {
  tunnel_hosts: TunnelHostTable;
  tunnels: TunnelTable;
  tunnel_keys: TunnelKeyTable;
  tunnel_paths: TunnelPathTable;
}

export type TunnelRow = Selectable<TunnelTable>;
export type TunnelKeyRow = Selectable<TunnelKeyTable>;
export type TunnelPathRow = Selectable<TunnelPathTable>;
export type TunnelHostRow = Selectable<TunnelHostTable>;
