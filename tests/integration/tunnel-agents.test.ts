import { execFileSync } from 'node:child_process';
import { readdir, readFile, rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, holdConnection, living, natsRequest, plainGet, startTunnelAgents, type TunnelAgents } from '@switchyard/testkit';

// tunnel-manager in its two roles against the real parts (startTunnelAgents): the edge in a
// network namespace of the test's, the node host's agent on this machine, where Docker runs the
// node. Orders go in through the API; clients dial the edge's address.
describe('tunnel-manager as edge and node-host agent', () => {
  let rig: TunnelAgents;
  let tunnelId: string;

  const view = async () => (await natsRequest<{ tunnels: any[] }>(rig.nc, 'tunnel.req.list', { tenantId: rig.node.tenantId, tunnelId }, 5000)).tunnels[0];
  const pathOf = (v: any, kind: string) => v?.paths.find((p: any) => p.kind === kind);
  const viaEdge = () => plainGet(rig.edgeAddress, rig.endpointPort, '/');
  const held = () => holdConnection(rig.edgeAddress, rig.endpointPort, '/');
  const hostRow = async () =>
    (await rig.sys.db.query<{ wireguard_public_key: string; wireguard_next_key: string | null }>('select * from tunnel_hosts where host_id = $1', [rig.hostId]))[0]!;
  const pidsIn = async (dir: string) =>
    Promise.all((await readdir(`${dir}/pids`)).map(async (f) => ({ name: f, pid: Number((await readFile(`${dir}/pids/${f}`, 'utf8')).split(' ')[0]) })));
  const since = (from: number, subject: string, match: (data: any) => boolean = () => true) =>
    rig.events.next((e) => rig.events.seen.indexOf(e) >= from && e.subject === subject && e.data.tunnelId === tunnelId && match(e.data), 40_000);
  const failover = (to: string, from: number) => since(from, 'tunnel.evt.failover', (d) => d.to === to);

  beforeAll(async () => {
    rig = await startTunnelAgents();
  }, 180_000);
  afterAll(async () => {
    await rig?.close();
  });

  it('opens a tunnel with wireguard and ssh paths whose endpoint on the edge reaches the node over WireGuard; private keys stay on their host', async () => {
    const placed = await rig.sys.http('POST', '/v1/tunnels', {
      body: {
        name: 'web',
        nodeId: rig.node.nodeId,
        port: rig.node.containerPort,
        paths: [{ kind: 'wireguard' }, { kind: 'ssh' }],
        probeIntervalMs: 300,
        fall: 2,
        holdDownMs: 2000,
      },
    });
    expect(placed.status, JSON.stringify(placed.body)).toBe(202);
    tunnelId = placed.body.tunnelId;
    const order = await rig.sys.waitForOrder(placed.body.id, ['fulfilled', 'failed'], { timeoutMs: 60_000 });
    expect(order, JSON.stringify(order)).toMatchObject({ status: 'fulfilled' });

    const v = await eventually(
      view,
      (t) => t?.paths.every((p: any) => p.state === 'up') && pathOf(t, 'wireguard').active,
      30_000,
      'both paths up, WireGuard taking new connections',
    );
    expect(v).toMatchObject({ status: 'open', endpoint: { host: rig.edgeAddress, port: rig.endpointPort } });
    expect(v.paths.map((p: any) => [p.kind, p.state, p.active])).toEqual([
      ['wireguard', 'up', true],
      ['ssh', 'up', false],
    ]);
    expect(await viaEdge()).toMatchObject({ status: 200, body: expect.stringMatching(/^hello from /) });
    // A real client of the endpoint: curl, over the WireGuard path.
    expect(execFileSync('curl', ['-sS', '--max-time', '5', `http://${rig.edgeAddress}:${rig.endpointPort}/`]).toString()).toMatch(/^hello from /);

    // The link is WireGuard's own: the edge's peer is the agent's key, and they have handshaken.
    const handshakes = await rig.edge.host.exec('wg', ['show', 'all', 'latest-handshakes']);
    expect(handshakes).toContain((await hostRow()).wireguard_public_key);
    expect(Number(handshakes.trim().split(/\s+/).at(-1))).toBeGreaterThan(0);

    // The ssh key was made on the node's host; the edge holds only its public half.
    expect((await readFile(`${rig.agentDir}/keys/${tunnelId}.ssh.1`, 'utf8')).startsWith('-----BEGIN OPENSSH PRIVATE KEY-----')).toBe(true);
    await expect(readdir(`${rig.edgeDir}/keys`)).rejects.toThrow(/ENOENT/);
    expect(JSON.stringify(v) + JSON.stringify(rig.events.seen)).not.toContain('PRIVATE KEY');
  });

  it('WireGuard broken at the edge: new connections move to ssh, back after the hold-down; a connection held on ssh works through both switches', async () => {
    let from = rig.events.seen.length;
    await rig.breakWireguard(true);
    const down = await failover('ssh', from);
    expect(down.data.reason).toMatch(/^switched to ssh: wireguard /);
    expect(await viaEdge()).toMatchObject({ status: 200 });

    const connection = held();
    await connection.answered(5);
    for (const broken of [false, true, false]) {
      from = rig.events.seen.length;
      await rig.breakWireguard(broken);
      const moved = await failover(broken ? 'ssh' : 'wireguard', from);
      if (!broken) expect(moved.data.reason).toMatch(/^back to wireguard: healthy for/);
      expect(await viaEdge()).toMatchObject({ status: 200 });
      await connection.answered(connection.count() + 5);
    }
    const result = await connection.stop();
    expect(result.errors).toEqual([]);
    expect(new Set(result.localPorts).size).toBe(1);
  });

  it('rotates the keys of both paths with a connection held open across it, which keeps working', async () => {
    const before = await view();
    const hostBefore = await hostRow();
    const connection = held();
    await connection.answered(5);
    const from = rig.events.seen.length;
    const placed = await rig.sys.http('POST', `/v1/tunnels/${tunnelId}/rotate`);
    expect(placed.status, JSON.stringify(placed.body)).toBe(202);
    const order = await rig.sys.waitForOrder(placed.body.id, ['fulfilled', 'failed'], { timeoutMs: 60_000 });
    expect(order, JSON.stringify(order)).toMatchObject({ status: 'fulfilled' });
    const ev = await since(from, 'tunnel.evt.rotated');
    expect(ev.data).toMatchObject({ paths: ['ssh', 'wireguard'], reason: 'asked for' });

    const hostAfter = await hostRow();
    expect(hostAfter.wireguard_public_key).not.toBe(hostBefore.wireguard_public_key);
    expect(hostAfter.wireguard_next_key).toBeNull();
    // The edge's only peer is the new key: the old one is refused from now on.
    const peers = await rig.edge.host.exec('wg', ['show', 'all', 'peers']);
    expect(peers).toContain(hostAfter.wireguard_public_key);
    expect(peers).not.toContain(hostBefore.wireguard_public_key);
    expect(pathOf(await view(), 'ssh').key.fingerprint).not.toBe(pathOf(before, 'ssh').key.fingerprint);

    expect(await viaEdge()).toMatchObject({ status: 200 });
    await connection.answered(connection.count() + 5);
    const result = await connection.stop();
    expect(result.errors).toEqual([]);
    expect(new Set(result.localPorts).size).toBe(1);
  });

  it('after a SIGKILL and a restart of the edge, the tunnel is back over WireGuard with its keys, and the old run is ended', async () => {
    const before = await view();
    const left = await pidsIn(rig.edgeDir);
    expect(left.map((p) => p.name).sort()).toEqual(['sshd.pid', 'wireguard-go.pid']);
    await rig.edgeProcess()!.stop('SIGKILL');
    expect(await living(left.map((p) => p.pid))).toHaveLength(2);
    await rig.startEdge();
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
    const hostBefore = await hostRow();
    const before = await view();
    const left = await pidsIn(rig.agentDir);
    expect(left.map((p) => p.name)).toContain('wireguard-go.pid');
    expect(left.some((p) => p.name.startsWith(`${tunnelId}.ssh.`))).toBe(true);
    await rig.agent()!.stop('SIGKILL');
    await rig.startAgent();
    const v = await eventually(view, (t) => t?.paths.every((p: any) => p.state === 'up') && pathOf(t, 'wireguard').active, 40_000, 'both paths up again');
    expect(await living(left.map((p) => p.pid))).toEqual([]);
    expect(pathOf(v, 'ssh').key.fingerprint).toBe(pathOf(before, 'ssh').key.fingerprint);
    expect((await hostRow()).wireguard_public_key).toBe(hostBefore.wireguard_public_key);
    expect(await viaEdge()).toMatchObject({ status: 200 });
  });

  it('gives the tunnel a new ssh key when the agent comes back without its keys (its state lost)', async () => {
    const before = await view();
    const from = rig.events.seen.length;
    await rig.agent()!.stop();
    await rm(`${rig.agentDir}/keys`, { recursive: true, force: true });
    await rig.startAgent();
    const replaced = await since(from, 'tunnel.evt.rotated');
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
    await expect(natsRequest(rig.nc, 'tunnel.req.plan', { hostId: 'intruder', wireguardPublicKey: null, sshKeys: [] }, 5000)).rejects.toThrow(
      /unknown node host intruder: this edge serves docker-1/,
    );
  });

  it("closes the tunnel: the edge's endpoint refuses, and the agent drops its listener, session and key", async () => {
    const placed = await rig.sys.http('DELETE', `/v1/tunnels/${tunnelId}`);
    expect(placed.status).toBe(202);
    expect((await rig.sys.waitForOrder(placed.body.id, ['fulfilled', 'failed'], { timeoutMs: 20_000 })).status).toBe('fulfilled');
    await expect(viaEdge()).rejects.toThrow(/ECONNREFUSED/);
    await eventually(
      () => readdir(`${rig.agentDir}/keys`),
      (files) => files.length === 0,
      15_000,
      "the agent's key files deleted",
    );
    await eventually(
      () => pidsIn(rig.agentDir),
      (pids) => pids.every((p) => p.name === 'wireguard-go.pid'),
      15_000,
      "the agent's ssh sessions ended",
    );
    // The agent's WireGuard end goes with it: nothing of it stays on this machine.
    const prefix = rig.range.replace(/\.0\/\d+$/, '.');
    const link = JSON.parse(execFileSync('ip', ['-j', 'addr', 'show']).toString()).find((l: any) => l.addr_info?.some((a: any) => a.local?.startsWith(prefix)));
    expect(link?.ifname).toMatch(/^sywg/);
    await rig.agent()!.stop();
    expect(execFileSync('ip', ['-j', 'link', 'show']).toString()).not.toContain(`"${link.ifname}"`);
  });
});
