import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, HTTP_APP_IMAGE, HTTP_APP_PORT, freePort, httpGet, startScaleToZero, type ScaleToZero } from '@switchyard/testkit';

// An app pool behind the load balancer's public port, all of its nodes asleep: the load
// balancer sends the connection to a sleeping node's port, the activator (nftables mode)
// catches it and wakes the node, and the client gets its answer. health-monitor runs too:
// a pool that sleeps gets no active checks, which would otherwise keep it awake.
describe('a sleeping app pool behind the load balancer', () => {
  let s: ScaleToZero;
  let publicPort: number;

  beforeAll(async () => {
    s = await startScaleToZero('nftables');
    await s.sys.start('health-monitor');
    await s.sys.start('load-balancer', { LB_LISTEN_HOST: '127.0.0.1', LB_PROXY_PORT: String(await freePort()), LB_WORKERS: '1' });
    publicPort = await freePort();
  }, 120_000);
  afterAll(async () => {
    await s?.close();
  });

  it("wakes a node for a connection to the pool's public port, which is answered with no client retry", async () => {
    const { poolId, nodeIds } = await s.createAppPool({ name: 'blog', image: HTTP_APP_IMAGE, containerPort: HTTP_APP_PORT, publicPort });
    const nodeId = nodeIds[0]!;
    const policy = await s.setSleepPolicy(poolId, { enabled: true, idleWindowSec: 600 });
    expect(policy.status, JSON.stringify(policy.body)).toBe(202);

    // Awake: the load balancer forwards to it (bounded wait for its listener and first route).
    const awake = await eventually(
      () => httpGet(publicPort, '/', 2_000).catch((err: Error) => err),
      (r) => !(r instanceof Error) && r.status === 200,
      20_000,
      'the awake node answering',
      { returnLast: true },
    );
    const why = async () => JSON.stringify({ node: (await s.sys.http('GET', `/v1/nodes/${nodeId}`)).body, best: (await s.sys.http('GET', `/v1/pools/${poolId}/best-node`)).body });
    expect(awake instanceof Error ? awake.message : awake.status, await why()).toBe(200);

    await s.sleepNow(nodeId);
    const since = Date.now();
    const answer = await httpGet(publicPort, '/', 15_000);
    expect(answer.status).toBe(200);
    const woke = await s.watch.next((m) => m.subject === 'activator.evt.woke' && m.data.nodeId === nodeId && m.at >= since, 15_000);
    expect(woke.data).toMatchObject({ trigger: 'connection', heldConnections: 1 });
    expect((await s.waitForNodeStatus(nodeId, 'running', 10_000)).status).toBe('running');
  }, 120_000);
});
