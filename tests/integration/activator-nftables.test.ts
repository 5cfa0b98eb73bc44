import { randomBytes } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  activatorState,
  addRedirect,
  armAndSleep,
  createAppPool,
  deleteNftTable,
  expectHealthy,
  metricValue,
  nftTableName,
  nodeView,
  rawGet,
  redirectedPorts,
  startActivator,
  waitForStatus,
  watchSubjects,
  freePort,
  docker,
  EXIT_NODE_IMAGE,
  startTestSystem,
  type ActivatorUnderTest,
  type AppNode,
  type SubjectWatch,
  type TestSystem,
} from '@switchyard/testkit';

// nftables mode against real Docker: the redirect set lives in a table of this test's own,
// deleted afterwards. Sleep is driven as the sleep controller would: arm, then node.cmd.sleep.
describe('socket activator, nftables mode', () => {
  const table = nftTableName();
  const doomedImage = `switchyard/exit-node:activator-test-${randomBytes(4).toString('hex')}`;
  let sys: TestSystem;
  let nc: NatsConnection;
  let events: SubjectWatch;
  let activator: ActivatorUnderTest;
  let node: AppNode;

  const state = () => activatorState(nc);
  const stateOf = async (nodeId: string) => (await state()).nodes.find((n: any) => n.nodeId === nodeId);
  const caught = (held: boolean) => metricValue(activator.metricsPort, 'switchyard_activator_connections_total', { held: String(held) });

  beforeAll(async () => {
    sys = await startTestSystem({ services: ['api-gateway', 'exit-node-manager'] });
    nc = await sys.natsClient();
    events = watchSubjects(nc, ['activator.evt.woke', 'activator.evt.failed', 'node.cmd.wake']);
    activator = await startActivator(sys, { ACTIVATOR_MODE: 'nftables', ACTIVATOR_NFT_TABLE: table });
    node = await createAppPool(sys, nc, 'sleepy');
  });
  afterAll(async () => {
    await sys?.close();
    await deleteNftTable(table);
    await docker
      .getImage(doomedImage)
      .remove()
      .catch(() => undefined);
  });

  it('catches a connection to a sleeping node, wakes it and answers with no client retry; then steps out of the path', async () => {
    await armAndSleep(nc, node);
    expect(await redirectedPorts(table)).toEqual([node.hostPort]);
    expect(await stateOf(node.nodeId)).toMatchObject({ state: 'armed', ports: [{ name: 'control', hostPort: node.hostPort, publicPort: null }] });

    const first = await rawGet(node.hostPort);
    expectHealthy(first);
    const woke = await events.next((m) => m.subject === 'activator.evt.woke' && m.data.nodeId === node.nodeId, 5000);
    expect(woke.data).toMatchObject({ trigger: 'connection', mode: 'nftables', heldConnections: 1 });
    expect(woke.data.firstByteMs).toBeGreaterThanOrEqual(woke.data.readyMs);
    expect(woke.data.readyMs).toBeLessThan(first.ms);
    expect(events.seen.filter((m) => m.subject === 'node.cmd.wake' && m.data.nodeId === node.nodeId)).toHaveLength(1);
    expect((await waitForStatus(nc, node.nodeId, 'running')).ports).toEqual(node.ports);

    // Out of the path: the set is empty, and the next connection never reaches the activator.
    expect(await redirectedPorts(table)).toEqual([]);
    expect(await stateOf(node.nodeId)).toMatchObject({ state: 'awake' });
    const before = { held: await caught(true), direct: await caught(false) };
    expect(before.held).toBe(1);
    expectHealthy(await rawGet(node.hostPort));
    expect({ held: await caught(true), direct: await caught(false) }).toEqual(before);
    expect(await metricValue(activator.metricsPort, 'switchyard_activator_cold_start_seconds_count', { stage: 'first_byte' })).toBe(1);
  });

  it('holds 60 connections that arrive during one wake and answers every one of them completely', async () => {
    await armAndSleep(nc, node);
    const wakesBefore = events.seen.filter((m) => m.subject === 'node.cmd.wake').length;
    const results = await Promise.all(Array.from({ length: 60 }, () => rawGet(node.hostPort)));
    for (const r of results) expectHealthy(r);
    const woke = await events.next((m) => m.subject === 'activator.evt.woke' && m.data.nodeId === node.nodeId && m.data.heldConnections > 1, 5000);
    expect(woke.data.heldConnections).toBe(60);
    expect(events.seen.filter((m) => m.subject === 'node.cmd.wake').length - wakesBefore).toBe(1);
    expect(await redirectedPorts(table)).toEqual([]);
  });

  it('after a SIGKILL and a restart during sleep, still catches the next connection, and drops a set entry no row has', async () => {
    await armAndSleep(nc, node);
    await activator.process.stop('SIGKILL');
    // Left by nobody the activator knows of: the rebuilt set must not keep it.
    const stray = await freePort();
    await addRedirect(table, stray);
    activator = await startActivator(sys, activator.env);
    expect(await redirectedPorts(table)).toEqual([node.hostPort]);
    expect(await stateOf(node.nodeId)).toMatchObject({ state: 'armed' });

    const wokeBefore = events.seen.filter((m) => m.subject === 'activator.evt.woke').length;
    expectHealthy(await rawGet(node.hostPort));
    await events.next((m) => m.subject === 'activator.evt.woke' && events.seen.indexOf(m) >= wokeBefore && m.data.nodeId === node.nodeId, 5000);
    expect(await redirectedPorts(table)).toEqual([]);
  });

  it('a wake that fails (image tag removed while asleep) ends the held connection with a FIN and publishes activator.evt.failed; the node stays catchable', async () => {
    await docker.getImage(EXIT_NODE_IMAGE).tag({ repo: doomedImage.split(':')[0]!, tag: doomedImage.split(':')[1]! });
    const doomed = await createAppPool(sys, nc, 'doomed', doomedImage);
    await armAndSleep(nc, doomed);
    await docker.getImage(doomedImage).remove();

    const r = await rawGet(doomed.hostPort);
    expect(r).toMatchObject({ data: '', how: 'end' });
    const failed = await events.next((m) => m.subject === 'activator.evt.failed' && m.data.nodeId === doomed.nodeId, 5000);
    expect(failed.data).toMatchObject({ heldConnections: 1 });
    expect(failed.data.reason).toMatch(/cannot wake node doomed-1: .*is not present/);
    // Failed fast, on the order's failure, long before the 10 s probe timeout.
    expect(r.ms).toBeLessThan(5000);
    expect((await nodeView(nc, doomed.nodeId)).status).toBe('sleeping');
    expect(await stateOf(doomed.nodeId)).toMatchObject({ state: 'armed' });
    expect(await redirectedPorts(table)).toEqual([doomed.hostPort]);

    // The image is back: the next connection wakes the node, and once the wake is told the
    // port is out of the set.
    await docker.getImage(EXIT_NODE_IMAGE).tag({ repo: doomedImage.split(':')[0]!, tag: doomedImage.split(':')[1]! });
    const wokeBefore = events.seen.filter((m) => m.subject === 'activator.evt.woke').length;
    expectHealthy(await rawGet(doomed.hostPort));
    await events.next((m) => m.subject === 'activator.evt.woke' && events.seen.indexOf(m) >= wokeBefore && m.data.nodeId === doomed.nodeId, 5000);
    expect(await redirectedPorts(table)).toEqual([]);
  });
});
