import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import type { NodeView, Payload, ReplyOf, SleepPolicy, SleepPolicyInput } from '@switchyard/contracts';
import { eventually, natsRequest, watchSubjects, docker, EXIT_NODE_IMAGE, startTestSystem, type SubjectWatch, type TestSystem } from '@switchyard/testkit';

// The real exit-node-manager and sleep-controller, with a stand-in for the socket activator:
// these tests are about deciding and carrying out sleeps, not about catching connections.
// ENM samples stats every 500 ms so windows of a few seconds can be judged.
describe('sleep-controller puts idle nodes to sleep', () => {
  let sys: TestSystem;
  let nc: NatsConnection;
  let watch: SubjectWatch;
  let tenantId: string;
  const armed: Payload<'activator.req.arm'>[] = [];
  let armReply: ReplyOf<'activator.req.arm'> = { ok: true };
  const testImage = `switchyard/sleep-test-${randomBytes(4).toString('hex')}:dev`;

  beforeAll(async () => {
    sys = await startTestSystem({ services: ['api-gateway'] });
    await sys.start('exit-node-manager', { STATS_INTERVAL_MS: '500' });
    await sys.start('sleep-controller', { SLEEP_RETRY_MS: '1000' });
    nc = await sys.natsClient();
    nc.subscribe('activator.req.arm', {
      callback: (err, msg) => {
        if (err) return;
        armed.push(msg.json());
        msg.respond(JSON.stringify(armReply));
      },
    });
    watch = watchSubjects(nc, ['sleep.evt.slept', 'sleep.evt.policy', 'node.evt.stopped', 'node.evt.started', 'order.evt.failed', 'order.evt.fulfilled']);
    await nc.flush();
    const [tenant] = await sys.db.query<{ id: string }>("select id from tenants where name = 'admin'");
    tenantId = tenant!.id;
    await docker.getImage(EXIT_NODE_IMAGE).tag({ repo: testImage.split(':')[0]!, tag: 'dev' });
  });

  afterAll(async () => {
    await sys?.close();
    await docker
      .getImage(testImage)
      .remove()
      .catch(() => undefined);
  });

  beforeEach(() => {
    armReply = { ok: true };
  });

  let poolCount = 0;
  async function createPool(nodes: number, opts: { sleep?: SleepPolicy; image?: string } = {}) {
    const placed = await sys.http('POST', '/v1/orders', {
      body: {
        type: 'pool.create',
        pool: {
          name: `sleepy-${++poolCount}`,
          kind: 'app',
          image: opts.image ?? EXIT_NODE_IMAGE,
          ports: [{ name: 'control', containerPort: 8000 }],
          nodes: { min: nodes, max: nodes },
          ...(opts.sleep ? { sleep: opts.sleep } : {}),
        },
      },
    });
    expect(placed.status, JSON.stringify(placed.body)).toBe(202);
    const order = await sys.waitForOrder(placed.body.id, ['fulfilled', 'failed']);
    expect(order.status, order.reason).toBe('fulfilled');
    return order.result as { poolId: string; nodeIds: string[] };
  }

  async function view(nodeId: string): Promise<NodeView> {
    const reply = await natsRequest<{ nodes: NodeView[] }>(nc, 'node.req.list', { tenantId, nodeId });
    return reply.nodes[0]!;
  }

  /** exit-node-manager publishes a node's event before it writes the row a view reads. */
  async function viewWhen(nodeId: string, status: string): Promise<NodeView> {
    return eventually(
      () => view(nodeId),
      (v) => v.status === status,
      5_000,
      `node ${nodeId} ${status}`,
      { intervalMs: 100, returnLast: true },
    );
  }

  async function runningView(nodeId: string): Promise<NodeView> {
    return eventually(
      () => view(nodeId),
      (v) => v.status === 'running' && v.ports.length > 0,
      10_000,
      `node ${nodeId} running`,
      { intervalMs: 100 },
    );
  }

  async function order(method: string, path: string, body?: unknown) {
    const placed = await sys.http(method, path, body === undefined ? {} : { body });
    expect(placed.status, JSON.stringify(placed.body)).toBe(202);
    return sys.waitForOrder(placed.body.id, ['fulfilled', 'failed']);
  }

  const setPolicy = async (poolId: string, input: SleepPolicyInput) => {
    const done = await order('PUT', `/v1/pools/${poolId}/sleep`, input);
    expect(done.status, done.reason).toBe('fulfilled');
  };

  const slept = (nodeId: string, timeoutMs: number) => watch.next((m) => m.subject === 'sleep.evt.slept' && m.data.nodeId === nodeId, timeoutMs);
  const sleptCount = (nodeId: string) => watch.seen.filter((m) => m.subject === 'sleep.evt.slept' && m.data.nodeId === nodeId).length;

  async function containerOf(nodeId: string) {
    const [c] = await docker.listContainers({ all: true, filters: { label: [`io.switchyard.node=${nodeId}`] } });
    expect(c, `no container for node ${nodeId}`).toBeDefined();
    return docker.getContainer(c!.Id).inspect();
  }

  /** GETs on fresh connections until `until` says stop (bounded by `maxMs`): outbound packets from the node. */
  async function keepBusy(port: number, maxMs: number, until: () => boolean) {
    const deadline = Date.now() + maxMs;
    let answered = 0;
    while (!until() && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const req = request({ host: '127.0.0.1', port, path: '/healthz', agent: false, timeout: 1000 }, (res) => {
          res.resume();
          res.on('end', () => {
            answered++;
            resolve();
          });
        });
        req.on('timeout', () => req.destroy());
        req.on('error', () => resolve());
        req.end();
      });
      await sleep(200);
    }
    return answered;
  }

  it('keeps a node with outbound traffic awake while its idle sibling sleeps after the window, stopped with its ports', async () => {
    const { poolId, nodeIds } = await createPool(2);
    const [busy, idle] = nodeIds as [string, string];
    const busyView = await runningView(busy);
    const idleView = await runningView(idle);
    await setPolicy(poolId, { enabled: true, idleWindowSec: 3, probeIntervalMs: 25, probeTimeoutMs: 4000 });
    const enabledAt = Date.now();

    let idleSlept = false;
    const traffic = keepBusy(busyView.ports[0]!.hostPort, 20_000, () => idleSlept);
    const sleptIdle = await slept(idle, 15_000);
    idleSlept = true;
    expect(await traffic).toBeGreaterThan(5);
    expect(sleptIdle.data).toMatchObject({ tenantId, poolId, nodeId: idle, reason: expect.stringMatching(/^idle: no outbound packets for \d+ s$/) });
    expect(sleptIdle.data.idleSec).toBeGreaterThanOrEqual(3);
    // The catch was armed with the node's ports and the policy's probe settings before the stop.
    expect(armed.filter((a) => a.nodeId === idle)).toEqual([{ tenantId, poolId, nodeId: idle, ports: idleView.ports, probeIntervalMs: 25, probeTimeoutMs: 4000 }]);

    await watch.next((m) => m.subject === 'node.evt.stopped' && m.data.nodeId === idle, 15_000);
    const asleep = await viewWhen(idle, 'sleeping');
    expect(asleep).toMatchObject({ status: 'sleeping', ports: idleView.ports });
    const container = await containerOf(idle);
    expect(container.State.Running).toBe(false);
    expect(container.Id).toBe(idleView.containerId);

    // The busy node was up the whole time, well past its window.
    expect(sleptCount(busy)).toBe(0);
    expect((await view(busy)).status).toBe('running');
    expect(Date.now() - enabledAt).toBeGreaterThan(3000);

    // Once its traffic stops, it sleeps too: it was spared for its traffic, not by chance.
    const sleptBusy = await slept(busy, 15_000);
    expect(sleptBusy.data.reason).toMatch(/^idle: /);
  });

  it('never lets a pool fall below minAwake running nodes', async () => {
    const { poolId, nodeIds } = await createPool(2);
    await Promise.all(nodeIds.map(runningView));
    await setPolicy(poolId, { enabled: true, idleWindowSec: 2, minAwake: 1 });
    const first = await watch.next((m) => m.subject === 'sleep.evt.slept' && nodeIds.includes(m.data.nodeId), 15_000);
    const other = nodeIds.find((id) => id !== first.data.nodeId)!;
    // Three more windows: the last awake node stays awake.
    await sleep(6000);
    expect(sleptCount(other)).toBe(0);
    expect((await view(other)).status).toBe('running');
    expect((await view(first.data.nodeId)).status).toBe('sleeping');
  });

  it('applies a policy change at once, without a restart: enabled, the node sleeps; disabled, it stays up', async () => {
    const { poolId, nodeIds } = await createPool(1);
    const nodeId = nodeIds[0]!;
    const before = await runningView(nodeId);
    // No policy yet: idle, but never put to sleep.
    await sleep(3000);
    expect(sleptCount(nodeId)).toBe(0);
    expect((await sys.http('GET', `/v1/pools/${poolId}/sleep`)).body).toMatchObject({ default: true, policy: { enabled: false } });

    await setPolicy(poolId, { enabled: true, idleWindowSec: 2 });
    expect((await sys.http('GET', `/v1/pools/${poolId}/sleep`)).body).toMatchObject({ default: false, policy: { enabled: true, idleWindowSec: 2, minAwake: 0 } });
    const policyEvent = await watch.next((m) => m.subject === 'sleep.evt.policy' && m.data.poolId === poolId, 5000);
    expect(policyEvent.data.policy).toEqual({ enabled: true, idleWindowSec: 2, minAwake: 0, probeIntervalMs: 30, probeTimeoutMs: 10_000 });
    await slept(nodeId, 10_000);
    await watch.next((m) => m.subject === 'node.evt.stopped' && m.data.nodeId === nodeId, 15_000);

    // Woken by hand, on the ports it had.
    await setPolicy(poolId, { enabled: false, idleWindowSec: 2 });
    const woke = await order('POST', `/v1/nodes/${nodeId}/wake`);
    expect(woke.status, woke.reason).toBe('fulfilled');
    const after = await runningView(nodeId);
    expect(after.ports).toEqual(before.ports);
    await sleep(6000);
    expect(sleptCount(nodeId)).toBe(1);
    expect((await view(nodeId)).status).toBe('running');
  });

  it('puts a node to sleep on request: the order ends fulfilled by ENM once the node is stopped', async () => {
    const { poolId, nodeIds } = await createPool(1);
    const nodeId = nodeIds[0]!;
    const running = await runningView(nodeId);
    const done = await order('POST', `/v1/nodes/${nodeId}/sleep`);
    expect(done.status, done.reason).toBe('fulfilled');
    expect(done.result).toMatchObject({ poolId, nodeIds: [nodeId] });
    expect(await view(nodeId)).toMatchObject({ status: 'sleeping', ports: running.ports });
    expect((await containerOf(nodeId)).State.Running).toBe(false);
    const event = await slept(nodeId, 5000);
    expect(event.data).toMatchObject({ reason: 'manual', idleSec: 0 });
    expect(armed.filter((a) => a.nodeId === nodeId)).toHaveLength(1);
  });

  it('does not sleep a node whose catch the activator refuses to arm, manual or idle, and tries again later without a busy loop', async () => {
    armReply = { ok: false, error: 'the redirect table is missing' };
    const { poolId, nodeIds } = await createPool(1);
    const nodeId = nodeIds[0]!;
    await runningView(nodeId);

    const refused = await order('POST', `/v1/nodes/${nodeId}/sleep`);
    expect(refused.status).toBe('failed');
    expect(refused.reason).toContain('the redirect table is missing');

    await setPolicy(poolId, { enabled: true, idleWindowSec: 1 });
    const from = armed.length;
    await sleep(5000);
    const attempts = armed.slice(from).filter((a) => a.nodeId === nodeId).length;
    // Idle all along: asked again after each retry delay (1 s), not on every tick.
    expect(attempts).toBeGreaterThanOrEqual(2);
    expect(attempts).toBeLessThanOrEqual(6);
    expect(sleptCount(nodeId)).toBe(0);
    expect((await view(nodeId)).status).toBe('running');
    expect((await containerOf(nodeId)).State.Running).toBe(true);

    armReply = { ok: true };
    await slept(nodeId, 10_000);
  });

  it('fails the wake of a node whose image was removed while it slept, naming the image; the node stays asleep', async () => {
    const { nodeIds } = await createPool(1, { image: testImage });
    const nodeId = nodeIds[0]!;
    const running = await runningView(nodeId);
    const asleep = await order('POST', `/v1/nodes/${nodeId}/sleep`);
    expect(asleep.status, asleep.reason).toBe('fulfilled');

    // Untagged only: the stopped container still holds the image, so a start would work, but must not.
    await docker.getImage(testImage).remove();
    const wake = await order('POST', `/v1/nodes/${nodeId}/wake`);
    expect(wake.status).toBe('failed');
    expect(wake.reason).toContain(`cannot wake node`);
    expect(wake.reason).toContain(`"${testImage}"`);
    expect(await view(nodeId)).toMatchObject({ status: 'sleeping', ports: running.ports });
    expect((await containerOf(nodeId)).State.Running).toBe(false);
  });
});
