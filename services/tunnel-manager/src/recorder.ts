import type { Payload, TunnelPathKind } from '@switchyard/contracts';
import type { Kysely } from '@switchyard/db';
import type { ForwarderEvent } from '@switchyard/tunnels';
import type { Database, TunnelRow } from './tables.js';
import type { PathStatus } from './views.js';

type TunnelEvent = 'tunnel.evt.opened' | 'tunnel.evt.closed' | 'tunnel.evt.up' | 'tunnel.evt.down' | 'tunnel.evt.failover' | 'tunnel.evt.rotated' | 'tunnel.evt.expired';
export type Publish = <S extends TunnelEvent>(subject: S, payload: Payload<S>, opts?: { msgId?: string }) => Promise<void>;

/**
 * What a tunnel tells: its events, and each path's latest state kept in `tunnel_paths` so a
 * restart and the API show what the forwarder last saw.
 */
export class TunnelRecorder {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly publish: Publish,
    private readonly log: { warn(o: object, msg: string): void },
  ) {}

  /** A forwarder's event: the path's state stored, then told; never throws (the forwarder goes on). */
  async record(row: TunnelRow, paths: Map<TunnelPathKind, PathStatus>, e: ForwarderEvent): Promise<void> {
    try {
      if (e.type === 'switch') {
        await this.emit('tunnel.evt.failover', row, { from: e.from ?? null, to: e.to ?? null, reason: e.reason });
        return;
      }
      const up = e.type === 'path-up';
      const reason = up ? (e.latencyMs !== undefined ? `probe answered in ${e.latencyMs.toFixed(1)} ms` : 'probe answered') : e.reason;
      paths.set(e.kind, { state: up ? 'up' : 'down', latencyMs: up ? (e.latencyMs ?? null) : null, reason: up ? null : e.reason, changedAt: new Date() });
      await this.savePath(row, e.kind, paths.get(e.kind)!);
      await this.emit(up ? 'tunnel.evt.up' : 'tunnel.evt.down', row, { path: e.kind, reason });
    } catch (err) {
      this.log.warn({ tunnelId: row.id, event: e.type, err: (err as Error).message }, 'could not record a path change');
    }
  }

  async savePath(row: TunnelRow, kind: TunnelPathKind, s: PathStatus): Promise<void> {
    const values = { state: s.state, latency_ms: s.latencyMs, reason: s.reason, changed_at: s.changedAt };
    await this.db
      .insertInto('tunnel_paths')
      .values({ tenant_id: row.tenant_id, tunnel_id: row.id, kind, ...values })
      .onConflict((oc) => oc.columns(['tenant_id', 'tunnel_id', 'kind']).doUpdateSet(values))
      .execute();
  }

  emit(subject: 'tunnel.evt.opened' | 'tunnel.evt.closed', row: TunnelRow, extra: { endpoint: { host: string; port: number } | null; reason?: string }): Promise<void>;
  emit(subject: 'tunnel.evt.up' | 'tunnel.evt.down', row: TunnelRow, extra: { path: TunnelPathKind; reason: string }): Promise<void>;
  emit(subject: 'tunnel.evt.failover', row: TunnelRow, extra: { from: TunnelPathKind | null; to: TunnelPathKind | null; reason: string }): Promise<void>;
  emit(subject: 'tunnel.evt.rotated' | 'tunnel.evt.expired', row: TunnelRow, extra: { paths: TunnelPathKind[]; reason: string }, msgId?: string): Promise<void>;
  emit(subject: TunnelEvent, row: TunnelRow, extra: object, msgId?: string): Promise<void> {
    const facts = { tenantId: row.tenant_id, tunnelId: row.id, nodeId: row.node_id, ...(row.pool_id ? { poolId: row.pool_id } : {}), name: row.name, at: new Date().toISOString() };
    // Opened and closed happen once per tunnel: a repeat (a redelivered command) is dropped by JetStream.
    const once = msgId ? { msgId } : subject === 'tunnel.evt.opened' || subject === 'tunnel.evt.closed' ? { msgId: `${subject}:${row.id}` } : {};
    return this.publish(subject, { ...facts, ...extra } as never, once);
  }
}
