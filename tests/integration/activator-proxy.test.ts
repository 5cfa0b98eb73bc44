import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  eventually,
  activatorState,
  armAndSleep,
  createAppPool,
  expectHealthy,
  metricValue,
  rawGet,
  startActivator,
  watchSubjects,
  startTestSystem,
  type ActivatorUnderTest,
  type AppNode,
  type SubjectWatch,
  type TestSystem,
} from '@switchyard/testkit';

// Proxy mode (no nftables): the activator owns a public port for every node port, forwards
// warm connections, and holds and wakes when the node sleeps.
describe('socket activator, proxy mode', () => {
  let sys: TestSystem;
  let nc: NatsConnection;
  let events: SubjectWatch;
  let activator: ActivatorUnderTest;
  let node: AppNode;

  const stateOf = async (nodeId: string) => (await activatorState(nc)).nodes.find((n: any) => n.nodeId === nodeId);
  async function publicPort(nodeId: string): Promise<number> {
    const port = await eventually(async () => (await stateOf(nodeId))?.ports[0]?.publicPort, Boolean, 10_000, `node ${nodeId}'s public port`, { intervalMs: 50 });
    return port as number;
  }

  beforeAll(async () => {
    sys = await startTestSystem({ services: ['api-gateway', 'exit-node-manager'] });
    nc = await sys.natsClient();
    events = watchSubjects(nc, ['activator.evt.woke', 'activator.evt.failed']);
    activator = await startActivator(sys, { ACTIVATOR_MODE: 'proxy' });
    node = await createAppPool(sys, nc, 'proxied');
  });
  afterAll(async () => {
    await sys?.close();
  });

  it('forwards warm connections from its public port to the running node, without a wake', async () => {
    const port = await publicPort(node.nodeId);
    expect(port).not.toBe(node.hostPort);
    expect(await stateOf(node.nodeId)).toMatchObject({ state: 'awake', ports: [{ name: 'control', hostPort: node.hostPort, publicPort: port }] });
    for (let i = 0; i < 3; i++) expectHealthy(await rawGet(port));
    expect(await metricValue(activator.metricsPort, 'switchyard_activator_connections_total', { held: 'false' })).toBe(3);
    expect(events.seen).toEqual([]);
  });

  it('a connection to the public port of a sleeping node wakes it and is answered', async () => {
    const port = await publicPort(node.nodeId);
    await armAndSleep(nc, node);
    expect(await stateOf(node.nodeId)).toMatchObject({ state: 'armed' });
    const results = await Promise.all(Array.from({ length: 10 }, () => rawGet(port)));
    for (const r of results) expectHealthy(r);
    const woke = await events.next((m) => m.subject === 'activator.evt.woke' && m.data.nodeId === node.nodeId, 5000);
    expect(woke.data).toMatchObject({ trigger: 'connection', mode: 'proxy', heldConnections: 10 });
    expect(await stateOf(node.nodeId)).toMatchObject({ state: 'awake' });
    expectHealthy(await rawGet(port));
  });

  it('binds the same public port again after a restart, and still catches for a sleeping node', async () => {
    const port = await publicPort(node.nodeId);
    await armAndSleep(nc, node);
    await activator.process.stop('SIGTERM');
    activator = await startActivator(sys, activator.env);
    expect(await stateOf(node.nodeId)).toMatchObject({ state: 'armed', ports: [{ publicPort: port }] });
    const before = events.seen.length;
    expectHealthy(await rawGet(port));
    await events.next((m) => events.seen.indexOf(m) >= before && m.subject === 'activator.evt.woke' && m.data.mode === 'proxy', 5000);
  });
});
