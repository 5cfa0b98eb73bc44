import type { Kysely } from '@switchyard/db';
import type { CatchStore, NodeCatch } from './catches.js';
import type { Database } from './tables.js';

export function createCatchStore(db: Kysely<Database>): CatchStore {
  return {
    async load() {
      const rows = await db.selectFrom('activator_catches').selectAll().orderBy('tenant_id').orderBy('node_id').orderBy('port_name').execute();
      const byNode = new Map<string, NodeCatch>();
      for (const r of rows) {
        let c = byNode.get(r.node_id);
        if (!c) {
          c = {
            tenantId: r.tenant_id,
            poolId: r.pool_id,
            nodeId: r.node_id,
            ports: [],
            armed: r.armed,
            armedAt: r.armed_at,
            probeIntervalMs: r.probe_interval_ms,
            probeTimeoutMs: r.probe_timeout_ms,
          };
          byNode.set(r.node_id, c);
        }
        c.ports.push({ name: r.port_name, containerPort: r.container_port, hostPort: r.host_port, publicPort: r.public_port });
      }
      return [...byNode.values()];
    },

    async save(c) {
      await db.transaction().execute(async (tx) => {
        await tx.deleteFrom('activator_catches').where('tenant_id', '=', c.tenantId).where('node_id', '=', c.nodeId).execute();
        if (c.ports.length === 0) return;
        await tx
          .insertInto('activator_catches')
          .values(
            c.ports.map((p) => ({
              tenant_id: c.tenantId,
              node_id: c.nodeId,
              port_name: p.name,
              pool_id: c.poolId,
              container_port: p.containerPort,
              host_port: p.hostPort,
              public_port: p.publicPort,
              armed: c.armed,
              armed_at: c.armedAt,
              probe_interval_ms: c.probeIntervalMs,
              probe_timeout_ms: c.probeTimeoutMs,
              updated_at: new Date(),
            })),
          )
          .execute();
      });
    },

    async forget(tenantId, nodeId) {
      await db.deleteFrom('activator_catches').where('tenant_id', '=', tenantId).where('node_id', '=', nodeId).execute();
    },
  };
}
