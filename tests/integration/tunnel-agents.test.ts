import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, rm } from 'node:fs/promises';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endLeftovers } from '../../services/tunnel-manager/src/leftovers.js';
import {
  type AppNode,
  type CuttableLink,
  createAppPool,
  eventually,
  holdConnection,
  living,
  makeTestEdge,
  natsRequest,
  plainGet,
  postgresPort,
  repoRoot,
  type ServiceProcess,
  type SubjectWatch,
  startCuttableLink,
  startService,
  startTestSystem,
  TEST_ROOT_LINK,
  type TestEdge,
  type TestSystem,
  watchSubjects,
} from '@switchyard/testkit';

// tunnel-manager in its two roles, against the real parts. The edge runs in a network namespace
// the test makes (its endpoints, sshd and WireGuard there), joined to this machine by a veth
// pair; the node host's agent runs on this machine itself, where Docker runs the node and
// publishes its port on 127.0.0.1. The edge reaches NATS and Postgres through relays on the
// veth's root end. Clients dial the edge's address on that veth.
describe('tunnel-manager as edge and node-host agent', () => {
  const id = randomBytes(4).toString('hex');
  const edgeDir = `/run/switchyard-test-edge-${id}`;
  const agentDir = `/run/switchyard-test-agent-${id}`;
  const range = `10.79.${Math.floor(Math.random() * 250)}.0/24`;
  const edgeAddress = TEST_ROOT_LINK.edge;
  const endpointPort = 42000;
  const wgPort = 51820;
  // The agent's WireGuard listens on this machine: a UDP port unlikely to be taken.
  const agentWgPort = 52000 + Math.floor(Math.random() * 900);
  const path = '/v1/publicip/ip';

  let sys: TestSystem;
  let nc: NatsConnection;
  let events: SubjectWatch;
  let edge: TestEdge;
  let relays: CuttableLink[] = [];
  let edgeProcess: ServiceProcess | undefined;
  let agent: ServiceProcess | undefined;
  let node: AppNode;
  let tunnelId: string;
  let edgeEnv: Record<string, string>;
  const agentEnv = {
    TUNNEL_ROLE: 'node',
    TUNNEL_HOST_ID: 'docker-1',
    TUNNEL_STATE_DIR: agentDir,
    TUNNEL_WG_PORT: String(agentWgPort),
    TUNNEL_RESYNC_MS: '2000',
    TUNNEL_SSH_RETRY_MS: '300',
  };

  const startEdge = async () => {
    edgeProcess = startService('tunnel-manager', edgeEnv, [], edge.host.netns);
    await edgeProcess.waitForLog(/"msg":"ready"/, 30_000);
  };
  const startAgent = async () => {
    agent = await sys.start('tunnel-manager', agentEnv);
  };
  const view = async () => (await natsRequest<{ tunnels: any[] }>(nc, 'tunnel.req.list', { tenantId: node.tenantId, tunnelId }, 5000)).tunnels[0];
  const pathOf = (v: any, kind: string) => v?.paths.find((p: any) => p.kind === kind);
  const viaEdge = () => plainGet(edgeAddress, endpointPort, path);
  const pidsIn = async (dir: string) =>
    Promise.all((await readdir(`${dir}/pids`)).map(async (f) => ({ name: f, pid: Number((await readFile(`${dir}/pids/${f}`, 'utf8')).split(' ')[0]) })));
  const wgBroken = async (broken: boolean) => {
    if (broken) await edge.host.nft(`table inet sytest {\n  chain input {\n    type filter hook input priority 0;\n    udp dport ${wgPort} drop\n  }\n}\n`);
    else await edge.host.nft('delete table inet sytest');
  };
  const failover = (to: string, from: number) =>
    events.next((e) => events.seen.indexOf(e) >= from && e.subject === 'tunnel.evt.failover' && e.data.tunnelId === tunnelId && e.data.to === to, 20_000);

  beforeAll(async () => {
    execFileSync('bash', [`${repoRoot}/infra/tunnel-users.sh`]);
    sys = await startTestSystem({ services: ['api-gateway', 'exit-node-manager'] });
    nc = await sys.natsClient();
    events = watchSubjects(nc, ['order.evt.*', 'tunnel.evt.*']);
    edge = await makeTestEdge();
    relays = [await startCuttableLink(sys.nats.port, edge.rootAddress), await startCuttableLink(postgresPort, edge.rootAddress)];
    const db = new URL(sys.db.urlFor('tunnel-manager'));
    db.hostname = edge.rootAddress;
    db.port = String(relays[1]!.port);
    edgeEnv = sys.env({
      ...sys.identityEnv('tunnel-manager'),
      NATS_URL: `nats://${edge.rootAddress}:${relays[0]!.port}`,
      DATABASE_URL: db.toString(),
      TUNNEL_ROLE: 'edge',
      TUNNEL_HOST_ID: 'docker-1',
      TUNNEL_STATE_DIR: edgeDir,
      TUNNEL_EDGE_HOST: edgeAddress,
      TUNNEL_SSH_HOST: edgeAddress,
      TUNNEL_WG_RANGE: range,
      TUNNEL_WG_PORT: String(wgPort),
      TUNNEL_PORT_MIN: String(endpointPort),
      TUNNEL_PORT_MAX: String(endpointPort + 4),
      TUNNEL_KEY_OVERLAP_MS: '20000',
      TUNNEL_ROTATE_MIN_INTERVAL_MS: '0',
    });
    await startEdge();
    await startAgent();
    node = await createAppPool(sys, nc, 'meshed');
  }, 120_000);

  afterAll(async () => {
    await agent?.stop();
    await edgeProcess?.stop();
    await sys?.close();
    for (const r of relays) await r.close();
    await edge?.remove();
    // What a failed test may have left of a SIGKILLed run: its processes, by pid file.
    for (const dir of [edgeDir, agentDir]) {
      await endLeftovers(dir);
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('opens a tunnel with wireguard and ssh paths whose endpoint on the edge reaches the node over WireGuard; private keys stay on their host', async () => {
    const placed = await sys.http('POST', '/v1/tunnels', {
      body: { name: 'web', nodeId: node.nodeId, port: 8000, paths: [{ kind: 'wireguard' }, { kind: 'ssh' }], probeIntervalMs: 300, fall: 2, holdDownMs: 2000 },
    });
    expect(placed.status, JSON.stringify(placed.body)).toBe(202);
    tunnelId = placed.body.tunnelId;
    const order = await sys.waitForOrder(placed.body.id, ['fulfilled', 'failed'], { timeoutMs: 60_000 });
    expect(order, JSON.stringify(order)).toMatchObject({ status: 'fulfilled' });

    const v = await eventually(
      view,
      (t) => t?.paths.every((p: any) => p.state === 'up') && pathOf(t, 'wireguard').active,
      30_000,
      'both paths up, WireGuard taking new connections',
    );
    expect(v).toMatchObject({ status: 'open', endpoint: { host: edgeAddress, port: endpointPort } });
    expect(v.paths.map((p: any) => [p.kind, p.state, p.active])).toEqual([
      ['wireguard', 'up', true],
      ['ssh', 'up', false],
    ]);
    expect(await viaEdge()).toMatchObject({ status: 200 });

    // The link is WireGuard's own: the edge's peer is the agent's key, and they have handshaken.
    const [host] = await sys.db.query<{ wireguard_public_key: string }>("select wireguard_public_key from tunnel_hosts where host_id = 'docker-1'");
    const handshakes = await edge.host.exec('wg', ['show', 'all', 'latest-handshakes']);
    expect(handshakes).toContain(host!.wireguard_public_key);
    expect(Number(handshakes.trim().split(/\s+/).at(-1))).toBeGreaterThan(0);

    // The ssh key was made on the node's host; the edge holds only its public half.
    const keyFile = `${agentDir}/keys/${tunnelId}.ssh.1`;
    expect((await readFile(keyFile, 'utf8')).startsWith('-----BEGIN OPENSSH PRIVATE KEY-----')).toBe(true);
    await expect(readdir(`${edgeDir}/keys`)).rejects.toThrow(/ENOENT/);
    expect(JSON.stringify(v) + JSON.stringify(events.seen)).not.toContain('PRIVATE KEY');
  });

  it('WireGuard broken at the edge: new connections move to ssh, back after the hold-down; a connection held on ssh works through both switches', async () => {
    let from = events.seen.length;
    await wgBroken(true);
    const down = await failover('ssh', from);
    expect(down.data.reason).toMatch(/^switched to ssh: wireguard /);
    expect(await viaEdge()).toMatchObject({ status: 200 });

    const held = holdConnection(edgeAddress, endpointPort, path);
    await held.answered(5);
    from = events.seen.length;
    await wgBroken(false);
    const back = await failover('wireguard', from);
    expect(back.data.reason).toMatch(/^back to wireguard: healthy for/);
    expect(await viaEdge()).toMatchObject({ status: 200 });
    await held.answered(held.count() + 5);

    from = events.seen.length;
    await wgBroken(true);
    await failover('ssh', from);
    await held.answered(held.count() + 5);
    from = events.seen.length;
    await wgBroken(false);
    await failover('wireguard', from);
    await held.answered(held.count() + 5);
    const result = await held.stop();
    expect(result.errors).toEqual([]);
    expect(new Set(result.localPorts).size).toBe(1);
  });

  it('rotates the keys of both paths with a connection held open across it, which keeps working', async () => {
    const before = await view();
    const [hostBefore] = await sys.db.query<{ wireguard_public_key: string }>("select wireguard_public_key from tunnel_hosts where host_id = 'docker-1'");
    const held = holdConnection(edgeAddress, endpointPort, path);
    await held.answered(5);
    const placed = await sys.http('POST', `/v1/tunnels/${tunnelId}/rotate`);
    expect(placed.status, JSON.stringify(placed.body)).toBe(202);
    const order = await sys.waitForOrder(placed.body.id, ['fulfilled', 'failed'], { timeoutMs: 60_000 });
    expect(order, JSON.stringify(order)).toMatchObject({ status: 'fulfilled' });
    const ev = await events.next((e) => e.subject === 'tunnel.evt.rotated' && e.data.tunnelId === tunnelId, 5000);
    expect(ev.data).toMatchObject({ paths: ['ssh', 'wireguard'], reason: 'asked for' });

    const [hostAfter] = await sys.db.query<{ wireguard_public_key: string; wireguard_next_key: string | null }>(
      "select wireguard_public_key, wireguard_next_key from tunnel_hosts where host_id = 'docker-1'",
    );
    expect(hostAfter!.wireguard_public_key).not.toBe(hostBefore!.wireguard_public_key);
    expect(hostAfter!.wireguard_next_key).toBeNull();
    // The edge's only peer is the new key: the old one is refused from now on.
    const peers = await edge.host.exec('wg', ['show', 'all', 'peers']);
    expect(peers).toContain(hostAfter!.wireguard_public_key);
    expect(peers).not.toContain(hostBefore!.wireguard_public_key);
    const after = await view();
    expect(pathOf(after, 'ssh').key.fingerprint).not.toBe(pathOf(before, 'ssh').key.fingerprint);

    expect(await viaEdge()).toMatchObject({ status: 200 });
    await held.answered(held.count() + 5);
    const result = await held.stop();
    expect(result.errors).toEqual([]);
    expect(new Set(result.localPorts).size).toBe(1);
  });

  it('after a SIGKILL and a restart of the edge, the tunnel is back over WireGuard with its keys, and the old run is ended', async () => {
    const before = await view();
    const left = await pidsIn(edgeDir);
    expect(left.map((p) => p.name).sort()).toEqual(['sshd.pid', 'wireguard-go.pid']);
    await edgeProcess!.stop('SIGKILL');
    expect(await living(left.map((p) => p.pid))).toHaveLength(2);
    await startEdge();
    const v = await eventually(
      view,
      (t) => t?.status === 'open' && t.paths.every((p: any) => p.state === 'up') && pathOf(t, 'wireguard').active,
      40_000,
      'the tunnel open again, over WireGuard',
    );
    expect(v.endpoint).toEqual(before.endpoint);
    expect(pathOf(v, 'ssh').key.fingerprint).toBe(pathOf(before, 'ssh').key.fingerprint);
    expect(await viaEdge()).toMatchObject({ status: 200 });
    expect(await living(left.map((p) => p.pid))).toEqual([]);
  });

  it("after a SIGKILL and a restart of the node host's agent, both paths come back with the same keys, and the old run is ended", async () => {
    const [hostBefore] = await sys.db.query<{ wireguard_public_key: string }>("select wireguard_public_key from tunnel_hosts where host_id = 'docker-1'");
    const before = await view();
    const left = await pidsIn(agentDir);
    expect(left.map((p) => p.name)).toContain('wireguard-go.pid');
    expect(left.some((p) => p.name.startsWith(`${tunnelId}.ssh.`))).toBe(true);
    await agent!.stop('SIGKILL');
    await startAgent();
    const v = await eventually(
      view,
      (t) => t?.paths.every((p: any) => p.state === 'up') && pathOf(t, 'wireguard').active,
      40_000,
      'both paths up again',
    );
    expect(await living(left.map((p) => p.pid))).toEqual([]);
    expect(pathOf(v, 'ssh').key.fingerprint).toBe(pathOf(before, 'ssh').key.fingerprint);
    const [hostAfter] = await sys.db.query<{ wireguard_public_key: string }>("select wireguard_public_key from tunnel_hosts where host_id = 'docker-1'");
    expect(hostAfter!.wireguard_public_key).toBe(hostBefore!.wireguard_public_key);
    expect(await viaEdge()).toMatchObject({ status: 200 });
  });

  it('gives the tunnel a new ssh key when the agent comes back without its keys (its state lost)', async () => {
    const before = await view();
    const from = events.seen.length;
    await agent!.stop();
    await rm(`${agentDir}/keys`, { recursive: true, force: true });
    await startAgent();
    const replaced = await events.next(
      (e) => events.seen.indexOf(e) >= from && e.subject === 'tunnel.evt.rotated' && e.data.tunnelId === tunnelId,
      40_000,
    );
    expect(replaced.data).toMatchObject({ paths: ['ssh'], reason: 'the node host lost its key' });
    const v = await eventually(
      view,
      (t) => pathOf(t, 'ssh').state === 'up' && pathOf(t, 'ssh').key.fingerprint !== pathOf(before, 'ssh').key.fingerprint,
      40_000,
      'ssh up again with a new key',
    );
    expect(pathOf(v, 'wireguard')).toMatchObject({ state: 'up', active: true });
    expect(await viaEdge()).toMatchObject({ status: 200 });
  });

  it('gives an agent that names another host nothing', async () => {
    await expect(natsRequest(nc, 'tunnel.req.plan', { hostId: 'intruder', wireguardPublicKey: null, sshKeys: [] }, 5000)).rejects.toThrow(
      /unknown node host intruder: this edge serves docker-1/,
    );
  });

  it("closes the tunnel: the edge's endpoint refuses, and the agent drops its listener, session and key", async () => {
    const placed = await sys.http('DELETE', `/v1/tunnels/${tunnelId}`);
    expect(placed.status).toBe(202);
    expect((await sys.waitForOrder(placed.body.id, ['fulfilled', 'failed'], { timeoutMs: 20_000 })).status).toBe('fulfilled');
    await expect(viaEdge()).rejects.toThrow(/ECONNREFUSED/);
    await eventually(
      () => readdir(`${agentDir}/keys`),
      (files) => files.length === 0,
      15_000,
      "the agent's key files deleted",
    );
    await eventually(
      () => pidsIn(agentDir),
      (pids) => pids.every((p) => p.name === 'wireguard-go.pid'),
      15_000,
      "the agent's ssh sessions ended",
    );
    // The agent's WireGuard end goes with it: nothing of it stays on this machine.
    const link = JSON.parse(execFileSync('ip', ['-j', 'addr', 'show']).toString()).find((l: any) =>
      l.addr_info?.some((a: any) => a.local?.startsWith(range.split('.0/')[0]!)),
    );
    expect(link?.ifname).toMatch(/^sywg/);
    await agent!.stop();
    agent = undefined;
    expect(execFileSync('ip', ['-j', 'link', 'show']).toString()).not.toContain(`"${link.ifname}"`);
  });
});
