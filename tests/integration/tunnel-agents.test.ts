import { execFileSync } from 'node:child_process';
import { readdir, readFile, rm } from 'node:fs/promises';
import { connect } from 'node:net';
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
  /** The agent's WireGuard interface on this machine: its name, public key, key file and address. */
  const agentLink = async () => {
    const name = (await readFile(`${rig.agentDir}/wireguard/host.interface`, 'utf8')).trim();
    const publicKey = execFileSync('wg', ['show', name, 'public-key']).toString().trim();
    const dir = `${rig.agentDir}/wireguard`;
    const files = (await readdir(dir)).filter((f) => f.startsWith('host-') && f.endsWith('.key')).map((f) => `${dir}/${f}`);
    const keyFile = files.find(
      (f) =>
        execFileSync('wg', ['pubkey'], { input: execFileSync('cat', [f]) })
          .toString()
          .trim() === publicKey,
    )!;
    const address = JSON.parse(execFileSync('ip', ['-j', 'addr', 'show', 'dev', name]).toString())[0].addr_info[0].local as string;
    return { name, publicKey, keyFile, address };
  };
  /** Every file's text under a directory (what the edge keeps). */
  const filesUnder = async (dir: string): Promise<string> => {
    const entries = await readdir(dir, { recursive: true, withFileTypes: true });
    const texts = await Promise.all(entries.filter((e) => e.isFile()).map((e) => readFile(`${e.parentPath}/${e.name}`, 'utf8').catch(() => '')));
    return texts.join('\n');
  };
  /** What a connection to the agent's listener gets when it does not come from the edge. */
  const fromElsewhere = (host: string, port: number) =>
    new Promise<string>((resolve) => {
      const socket = connect({ host, port }, () => socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
      let got = '';
      socket.on('data', (c) => (got += c.toString()));
      socket.on('error', (err) => resolve(`error ${err.message}`));
      socket.on('close', () => resolve(got === '' ? 'closed, nothing answered' : got));
      socket.setTimeout(5000, () => socket.destroy());
    });

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

    // The link is WireGuard's own: the agent's interface holds the key the edge has as its peer, and they have handshaken.
    const agentKey = (await agentLink()).publicKey;
    expect((await hostRow()).wireguard_public_key).toBe(agentKey);
    const handshakes = await rig.edge.host.exec('wg', ['show', 'all', 'latest-handshakes']);
    expect(handshakes).toContain(agentKey);
    expect(Number(handshakes.trim().split(/\s+/).at(-1))).toBeGreaterThan(0);

    // Keys were made on their host; the edge holds only public halves, and no view or event a private one.
    const sshKey = await readFile(`${rig.agentDir}/keys/${tunnelId}.ssh.1`, 'utf8');
    expect(sshKey.startsWith('-----BEGIN OPENSSH PRIVATE KEY-----')).toBe(true);
    const wgKey = (await readFile((await agentLink()).keyFile, 'utf8')).trim();
    await expect(readdir(`${rig.edgeDir}/keys`)).rejects.toThrow(/ENOENT/);
    const told = JSON.stringify(v) + JSON.stringify(rig.events.seen);
    expect(told).not.toContain('PRIVATE KEY');
    // The edge keeps private keys of its own (its sshd's host key, its WireGuard key), none of the agent's.
    const kept = told + (await filesUnder(rig.edgeDir));
    expect(kept).not.toContain(wgKey);
    // Past the header every OpenSSH key file shares: the lines that hold this key's own bytes.
    for (const line of sshKey.split('\n').slice(2, -2)) expect(kept).not.toContain(line);
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

  it("carries only the edge's connections at the agent's listener: anything else on the node's host is cut", async () => {
    const { address } = await agentLink();
    // Cut before a byte is read: a FIN, or a reset when the request was already in.
    expect(await fromElsewhere(address, rig.endpointPort)).toMatch(/^(closed, nothing answered|error read ECONNRESET)$/);
    expect(await viaEdge()).toMatchObject({ status: 200 });
  });

  it('rotates the ssh key through the API and the link key on its schedule, each with a connection held open across it', async () => {
    const before = await view();
    const connection = held();
    await connection.answered(5);
    let from = rig.events.seen.length;
    const placed = await rig.sys.http('POST', `/v1/tunnels/${tunnelId}/rotate`);
    expect(placed.status, JSON.stringify(placed.body)).toBe(202);
    const order = await rig.sys.waitForOrder(placed.body.id, ['fulfilled', 'failed'], { timeoutMs: 60_000 });
    expect(order, JSON.stringify(order)).toMatchObject({ status: 'fulfilled' });
    // A tenant rotates its own key: the link's is the host pair's, and every tenant's traffic rides it.
    expect((await since(from, 'tunnel.evt.rotated')).data).toMatchObject({ paths: ['ssh'], reason: 'asked for' });
    expect(pathOf(await view(), 'ssh').key.fingerprint).not.toBe(pathOf(before, 'ssh').key.fingerprint);
    await connection.answered(connection.count() + 5);

    // A week on, as far as the table knows: the edge asks the agent for a new link key.
    const hostBefore = await hostRow();
    from = rig.events.seen.length;
    await rig.sys.db.query("update tunnel_hosts set wireguard_rotated_at = now() - interval '8 days' where host_id = $1", [rig.hostId]);
    const linkRotated = await since(from, 'tunnel.evt.rotated');
    expect(linkRotated.data).toMatchObject({ paths: ['wireguard'], reason: "the node host's WireGuard key rotated (TUNNEL_WG_ROTATE_HOURS)" });
    const hostAfter = await hostRow();
    expect(hostAfter.wireguard_public_key).not.toBe(hostBefore.wireguard_public_key);
    expect(hostAfter.wireguard_next_key).toBeNull();
    expect((await agentLink()).publicKey).toBe(hostAfter.wireguard_public_key);
    // The edge's only peer is the new key: the old one is refused from now on.
    const peers = await rig.edge.host.exec('wg', ['show', 'all', 'peers']);
    expect(peers).toContain(hostAfter.wireguard_public_key);
    expect(peers).not.toContain(hostBefore.wireguard_public_key);
    // The agent lets go of the old key's file once the edge says the rotation is over.
    await eventually(
      async () => (await readdir(`${rig.agentDir}/wireguard`)).filter((f) => f.endsWith('.key')).length,
      (n) => n === 1,
      10_000,
      'one link key file left',
    );

    expect(await viaEdge()).toMatchObject({ status: 200 });
    await connection.answered(connection.count() + 5);
    const result = await connection.stop();
    expect(result.errors).toEqual([]);
    expect(new Set(result.localPorts).size).toBe(1);
  });

  it("opens a tunnel to an app pool's port: connections reach each of its nodes, over WireGuard and over ssh", async () => {
    const pool = await rig.addHttpAppPool('pooled', 2);
    const placed = await rig.sys.http('POST', '/v1/tunnels', {
      body: { name: 'pool', poolId: pool.poolId, port: rig.node.containerPort, paths: [{ kind: 'wireguard' }, { kind: 'ssh' }], probeIntervalMs: 300, fall: 2, holdDownMs: 2000 },
    });
    expect(placed.status, JSON.stringify(placed.body)).toBe(202);
    const poolTunnel = placed.body.tunnelId;
    expect((await rig.sys.waitForOrder(placed.body.id, ['fulfilled', 'failed'], { timeoutMs: 60_000 })).status).toBe('fulfilled');
    const poolView = async () => (await natsRequest<{ tunnels: any[] }>(rig.nc, 'tunnel.req.list', { tenantId: rig.node.tenantId, tunnelId: poolTunnel }, 5000)).tunnels[0];
    const v = await eventually(poolView, (t) => t?.paths.every((p: any) => p.state === 'up') && pathOf(t, 'wireguard').active, 30_000, 'the pool tunnel up');
    const port = v.endpoint.port as number;
    // Each new connection goes to the pool's next node: both answer within a few.
    const answering = async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 8; i++) seen.add((await plainGet(rig.edgeAddress, port, '/')).body.trim());
      return seen;
    };
    expect((await answering()).size).toBe(2);

    const from = rig.events.seen.length;
    await rig.breakWireguard(true);
    await rig.events.next((e) => rig.events.seen.indexOf(e) >= from && e.subject === 'tunnel.evt.failover' && e.data.tunnelId === poolTunnel && e.data.to === 'ssh', 20_000);
    expect((await answering()).size).toBe(2);
    await rig.breakWireguard(false);
    await eventually(poolView, (t) => pathOf(t, 'wireguard').active, 20_000, 'back over WireGuard');

    // A node taken out of the pool takes no more connections: its port may be another node's next.
    const scaled = await rig.sys.http('POST', '/v1/orders', { body: { type: 'pool.scale', poolId: pool.poolId, nodes: { min: 1, max: 1 } } });
    expect(scaled.status, JSON.stringify(scaled.body)).toBe(202);
    expect((await rig.sys.waitForOrder(scaled.body.id, ['fulfilled', 'failed'], { timeoutMs: 60_000 })).status).toBe('fulfilled');
    const left = await eventually(answering, (seen) => seen.size === 1, 20_000, 'one node left answering');
    await eventually(answering, (seen) => seen.size === 1 && [...seen][0] === [...left][0], 10_000, 'the same one, every time');

    // A pool's tunnel is on the pool's timeline.
    const timeline = await eventually(
      () => rig.sys.http('GET', `/v1/activity?poolId=${pool.poolId}&kind=tunnel_opened`),
      (r) => r.body.items?.length === 1,
      10_000,
      "the pool tunnel's opening on the pool's timeline",
    );
    expect(timeline.body.items[0]).toMatchObject({ poolId: pool.poolId, nodeId: null });
    const closed = await rig.sys.http('DELETE', `/v1/tunnels/${poolTunnel}`);
    expect((await rig.sys.waitForOrder(closed.body.id, ['fulfilled', 'failed'], { timeoutMs: 20_000 })).status).toBe('fulfilled');
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
    // The agent's restart took its WireGuard end down and up too: both paths back, WireGuard preferred again.
    await eventually(
      view,
      (t) => pathOf(t, 'ssh').state === 'up' && pathOf(t, 'ssh').key.fingerprint !== pathOf(before, 'ssh').key.fingerprint && pathOf(t, 'wireguard').active,
      40_000,
      'ssh up again with a new key, WireGuard taking new connections',
    );
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
    const { address } = await agentLink();
    await eventually(
      () => fromElsewhere(address, rig.endpointPort),
      (r) => r.includes('ECONNREFUSED'),
      15_000,
      "the agent's listener closed",
    );
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
    const { name } = await agentLink();
    expect(name).toMatch(/^sywg/);
    await rig.agent()!.stop();
    expect(execFileSync('ip', ['-j', 'link', 'show']).toString()).not.toContain(`"${name}"`);
  });
});
