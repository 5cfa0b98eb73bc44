import { randomUUID } from 'node:crypto';
import type { ConsumerHandlers } from '@switchyard/bus';
import type { Payload } from '@switchyard/contracts';
import type { Kysely } from '@switchyard/db';
import type { Database, SpeedTest } from './tables.js';

export type SpeedTestResult = Payload<'health.evt.speedtest'>;

/** Stores a result once, however often it arrives (event redelivery, the POST that asked for it). */
export async function recordSpeedTest(db: Kysely<Database>, r: SpeedTestResult): Promise<void> {
  await db
    .insertInto('speed_tests')
    .values({
      tenant_id: r.tenantId,
      id: randomUUID(),
      node_id: r.nodeId,
      download_mbps: r.downloadMbps,
      upload_mbps: r.uploadMbps,
      latency_ms: r.latencyMs,
      tested_at: new Date(r.at),
    })
    .onConflict((oc) => oc.columns(['tenant_id', 'node_id', 'tested_at']).doNothing())
    .execute();
}

/** Newest first. */
export async function listSpeedTests(db: Kysely<Database>, tenantId: string, opts: { nodeId?: string | undefined; limit: number }): Promise<SpeedTest[]> {
  let q = db.selectFrom('speed_tests').selectAll().where('tenant_id', '=', tenantId);
  if (opts.nodeId) q = q.where('node_id', '=', opts.nodeId);
  return q.orderBy('tested_at', 'desc').limit(opts.limit).execute();
}

export function speedTestHandlers(db: Kysely<Database>): ConsumerHandlers<'apiGatewaySpeedTests'> {
  return { 'health.evt.speedtest': async (e) => recordSpeedTest(db, e) };
}
