import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDatabaseApp, type DatabaseApp } from './database-app.js';

// POST /api/nodes/uk/start against a real database: the order and its command say GB, the
// answer says uk, as the VPN Exit Controller's clients wrote it.
describe('/api/nodes/uk/start', () => {
  let t: DatabaseApp;
  beforeAll(async () => {
    t = await startDatabaseApp();
  });
  afterAll(async () => t?.close());

  it('orders a node in GB and answers with uk', async () => {
    const tenant = await t.newTenant('uk');
    const res = await t.app.inject({ method: 'POST', url: '/api/nodes/uk/start', headers: t.bearer(tenant.key) });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ status: 'starting', country: 'uk', server: null });
    const nodeId = res.json().node_id as string;
    const [command] = await t.database.query<{ subject: string; payload: { country: string; nodeId: string } }>('select subject, payload from outbox where tenant_id = $1', [
      tenant.id,
    ]);
    expect(command).toMatchObject({ subject: 'node.cmd.add', payload: { country: 'GB', nodeId } });
  });
});
