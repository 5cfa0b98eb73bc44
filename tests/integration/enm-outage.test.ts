import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NatsConnection } from '@nats-io/transport-node';
import { eventually, startDockerLink, docker, startTestSystem, type DockerLink, type TestSystem } from '@switchyard/testkit';

// exit-node-manager reaches Docker through a relay the test cuts: a node killed while the
// engine is out of reach (as during a dockerd restart) is noticed and healed once it is back,
// and one killed while the manager itself is down is healed when the manager starts again.
describe('exit-node-manager across a Docker outage and its own restart', () => {
  let sys: TestSystem;
  let link: DockerLink;
  let nc: NatsConnection;
  let nodeIds: string[];
  const seen: Array<{ subject: string; data: any }> = [];
  const managerEnv = () => ({ DOCKER_HOST: link.dockerHost, HEAL_BASE_DELAY_MS: '200' });

  beforeAll(async () => {
    link = await startDockerLink();
    sys = await startTestSystem({ services: ['api-gateway'] });
    await sys.start('exit-node-manager', managerEnv());
    nc = await sys.natsClient();
    nc.subscribe('node.evt.*', {
      callback: (err, msg) => {
        if (!err) seen.push({ subject: msg.subject, data: msg.json() });
      },
    });
    const placed = await sys.http('POST', '/v1/orders', {
      body: { type: 'pool.create', pool: { name: 'lisbon', kind: 'exit', country: 'PT', nodes: { min: 2, max: 2 } } },
    });
    expect(placed.status).toBe(202);
    const order = await sys.waitForOrder(placed.body.id, ['fulfilled', 'failed'], { timeoutMs: 60_000 });
    expect(order.status, order.reason).toBe('fulfilled');
    nodeIds = order.result.nodeIds;
  });
  afterAll(async () => {
    await sys?.close();
    await link?.close();
  });

  const next = async (match: (m: { subject: string; data: any }) => boolean, timeoutMs: number, after: number) => {
    const found = await eventually(
      () => seen.slice(after).find(match),
      (m) => m !== undefined,
      timeoutMs,
      'a matching message',
      { intervalMs: 25, returnLast: true },
    );
    if (!found) throw new Error(`no matching message in ${timeoutMs} ms; last: ${JSON.stringify(seen.slice(-8).map((m) => [m.subject, m.data.nodeId]))}`);
    return found;
  };
  const containerOf = async (nodeId: string) => {
    const [c] = await docker.listContainers({ all: true, filters: { label: [`io.switchyard.node=${nodeId}`] } });
    return c!;
  };
  const nodeView = async (nodeId: string) => {
    const reply = await nc.request('node.req.list', JSON.stringify({ tenantId: (await containerOf(nodeId)).Labels['io.switchyard.tenant'], nodeId }), { timeout: 5000 });
    return reply.json<{ nodes: any[] }>().nodes[0];
  };
  // node.evt.started goes out just before the row is written.
  const runningView = async (nodeId: string) => {
    return eventually(
      () => nodeView(nodeId),
      (view) => view.status === 'running',
      3_000,
      `node ${nodeId} running`,
      { intervalMs: 50, returnLast: true },
    );
  };

  it('notices a node killed while Docker was unreachable and heals it when Docker is back', async () => {
    const nodeId = nodeIds[0]!;
    const before = await containerOf(nodeId);
    const manager = sys.processes('exit-node-manager')[0]!;
    await link.cut();
    await manager.waitForLog(/Docker event stream lost/, 5000);
    const mark = seen.length;
    await docker.getContainer(before.Id).kill();
    // Long enough for several failed reconnects of the event stream.
    await sleep(1500);
    await link.restore();

    const died = await next((m) => m.subject === 'node.evt.died' && m.data.nodeId === nodeId, 15_000, mark);
    expect(died.data.containerId).toBe(before.Id);
    const started = await next((m) => m.subject === 'node.evt.started' && m.data.nodeId === nodeId, 15_000, mark);
    expect((await containerOf(nodeId)).State).toBe('running');
    expect(await runningView(nodeId)).toMatchObject({ status: 'running', ports: started.data.ports });
    // And the watch is live again: the next death is seen as it happens.
    const mark2 = seen.length;
    await docker.getContainer((await containerOf(nodeId)).Id).kill();
    await next((m) => m.subject === 'node.evt.died' && m.data.nodeId === nodeId, 3000, mark2);
    await next((m) => m.subject === 'node.evt.started' && m.data.nodeId === nodeId, 15_000, mark2);
    expect((await runningView(nodeId)).status).toBe('running');
  });

  it('heals a node killed while the manager was down, when it starts again', async () => {
    const nodeId = nodeIds[1]!;
    const [manager] = sys.processes('exit-node-manager');
    await manager!.stop('SIGKILL');
    const mark = seen.length;
    const before = await containerOf(nodeId);
    await docker.getContainer(before.Id).kill();
    await sys.start('exit-node-manager', managerEnv());

    const died = await next((m) => m.subject === 'node.evt.died' && m.data.nodeId === nodeId, 15_000, mark);
    expect(died.data.containerId).toBe(before.Id);
    await next((m) => m.subject === 'node.evt.started' && m.data.nodeId === nodeId, 15_000, mark);
    expect((await containerOf(nodeId)).State).toBe('running');
    // The other node, untouched, is neither reported dead nor restarted.
    expect(seen.slice(mark).filter((m) => m.data.nodeId === nodeIds[0] && (m.subject === 'node.evt.died' || m.subject === 'node.evt.started'))).toEqual([]);
    expect((await runningView(nodeId)).status).toBe('running');
  });
});
