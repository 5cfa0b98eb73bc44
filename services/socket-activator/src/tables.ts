import type { UpdatedAt } from '@switchyard/db';

/** One port of a node the activator knows: caught while armed, forwarded to host_port. */
interface CatchTable {
  tenant_id: string;
  node_id: string;
  port_name: string;
  pool_id: string;
  container_port: number;
  host_port: number;
  /** Proxy mode: the activator's own port for it, bound once and re-bound after a restart. */
  public_port: number | null;
  armed: boolean;
  /** When the catch was last armed: a start older than this is not a wake. */
  armed_at: Date | null;
  probe_interval_ms: number;
  probe_timeout_ms: number;
  updated_at: UpdatedAt;
}

export interface Database {
  activator_catches: CatchTable;
}
