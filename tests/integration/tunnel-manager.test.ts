import { execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { readdir, readFile, rm } from 'node:fs/promises';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endLeftovers } from '@switchyard/tunnels';
import {
  createAppPool,
  eventually,
  holdConnection,
  living,
  natsRequest,
  plainGet,
  repoRoot,
  startTestSystem,
  watchSubjects,
  type AppNode,
  type ServiceProcess,
  type SubjectWatch,
  type TestSystem,
} from '@switchyard/testkit';

// tunnel-manager in single-host mode against the real parts: its own sshd (the edge) and ssh
// clients (the node's side) on this machine, a real node container, the real NATS and
// Postgres. Commands go in as the gateway sends them.
describe('tunnel-manager (single host)', () => {
  const id = randomBytes(4).toString('hex');
  const stateDir = `/run/switchyard-test-tm-${id}`;
  // Below the range the tests' freePort draws from (10000 up to the ephemeral ports), so no
  // other test can be handed one of these; nothing on this machine listens in 7000-7899.
  const base = 7000 + Math.floor(Math.random() * 45) * 20;
  const env = {
    TUNNEL_STATE_DIR: stateDir,
    TUNNEL_PORT_MIN: String(base),
    TUNNEL_PORT_MAX: String(base + 4),
    TUNNEL_SSH_PORT: String(base + 5),
    TUNNEL_SSH_FORWARD_MIN: String(base + 10),
    TUNNEL_SSH_FORWARD_MAX: String(base + 19),
    TUNNEL_KEY_OVERLAP_MS: '20000',
    TUNNEL_ROTATE_MIN_INTERVAL_MS: '0',
    TUNNEL_MAX_PER_TENANT: '2',
    // A killed ssh client stays down long enough for the probes to see it.
    TUNNEL_SSH_RETRY_MS: '5000',
    TUNNEL_KEY_CHECK_MS: '500',
  };
  let sys: TestSystem;
  let nc: NatsConnection;
  let events: SubjectWatch;
  let manager: ServiceProcess;
  let node: AppNode;

  const command = async (subject: string, payload: object): Promise<{ status: 'fulfilled' | 'failed'; data: any }> => {
    const orderId = randomUUID();
    await jetstream(nc).publish(subject, JSON.stringify({ orderId, tenantId: node.tenantId, ...payload }));
    const m = await events.next((e) => (e.subject === 'order.evt.fulfilled' || e.subject === 'order.evt.failed') && e.data.orderId === orderId, 40_000);
    return { status: m.subject === 'order.evt.fulfilled' ? 'fulfilled' : 'failed', data: m.data };
  };
  const list = (tunnelId?: string) => natsRequest<{ tunnels: any[] }>(nc, 'tunnel.req.list', { tenantId: node.tenantId, ...(tunnelId ? { tunnelId } : {}) }, 5000);
  const spec = (name: string, paths: object[]) => ({ name, nodeId: node.nodeId, port: 8000, paths, probeIntervalMs: 200, fall: 2, holdDownMs: 1000 });

  beforeAll(async () => {
    execFileSync('bash', [`${repoRoot}/infra/tunnel-users.sh`]);
    sys = await startTestSystem({ services: ['api-gateway', 'exit-node-manager'] });
    nc = await sys.natsClient();
    events = watchSubjects(nc, ['order.evt.*', 'tunnel.evt.*']);
    manager = await sys.start('tunnel-manager', env);
    node = await createAppPool(sys, nc, 'tunneled');
  }, 120_000);
  afterAll(async () => {
    await sys?.close();
    // What a failed test may have left of a SIGKILLed tunnel-manager: its processes, by pid file.
    await endLeftovers(stateDir);
    await rm(stateDir, { recursive: true, force: true });
  });

  it('opens a tunnel through the API whose endpoint reaches the node over ssh, with direct as the fallback, and says so', async () => {
    const placed = await sys.http('POST', '/v1/tunnels', { body: spec('web', [{ kind: 'ssh' }, { kind: 'direct', address: '127.0.0.1' }]) });
    expect(placed.status, JSON.stringify(placed.body)).toBe(202);
    const { tunnelId } = placed.body;
    const order = await sys.waitForOrder(placed.body.id, ['fulfilled', 'failed'], { timeoutMs: 40_000 });
    expect(order, JSON.stringify(order)).toMatchObject({ status: 'fulfilled', result: { tunnelId } });
    const ev = await events.next((e) => e.subject === 'tunnel.evt.opened' && e.data.tunnelId === tunnelId, 5000);
    expect(ev.data.endpoint).toEqual({ host: '127.0.0.1', port: base });

    const view = await eventually(
      () => list(tunnelId),
      (r) => r.tunnels[0]?.paths.every((p: any) => p.state === 'up') && r.tunnels[0].paths[0].active,
      20_000,
      'both paths up, ssh taking new connections',
    );
    const t = view.tunnels[0];
    expect(t).toMatchObject({ status: 'open', endpoint: { host: '127.0.0.1', port: base }, spec: { name: 'web' } });
    expect(t.paths.map((p: any) => [p.kind, p.state, p.active])).toEqual([
      ['ssh', 'up', true],
      ['direct', 'up', false],
    ]);
    expect(t.paths[0].key.fingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    const got = await sys.http('GET', `/v1/tunnels/${tunnelId}`);
    expect(got.status).toBe(200);
    expect(got.body).toMatchObject({ tunnelId, endpoint: t.endpoint, paths: [{ kind: 'ssh' }, { kind: 'direct' }] });
    expect(t.paths[1].key).toBeNull();
    expect(await get(base, '/v1/publicip/ip')).toMatchObject({ status: 200 });

    // The private half stays in the state directory, 0600, and never appears in a view or event.
    const keyFile = `${stateDir}/keys/${tunnelId}.ssh.1`;
    expect((await readFile(keyFile, 'utf8')).startsWith('-----BEGIN OPENSSH PRIVATE KEY-----')).toBe(true);
    expect(JSON.stringify(view) + JSON.stringify(events.seen)).not.toContain('PRIVATE KEY');
  });

  it('rotates the ssh key with a connection held open across it, which keeps working', async () => {
    const [t] = (await list()).tunnels.filter((x: any) => x.spec.name === 'web');
    const before = t.paths[0].key.fingerprint;
    const held = holdConnection('127.0.0.1', base, '/v1/publicip/ip');
    await held.answered(3);
    const rotated = await command('tunnel.cmd.rotate', { tunnelId: t.tunnelId });
    expect(rotated.status, JSON.stringify(rotated.data)).toBe('fulfilled');
    const ev = await events.next((e) => e.subject === 'tunnel.evt.rotated' && e.data.tunnelId === t.tunnelId, 5000);
    expect(ev.data).toMatchObject({ paths: ['ssh'], reason: 'asked for' });

    const after = (await list(t.tunnelId)).tunnels[0];
    expect(after.paths[0].key.fingerprint).not.toBe(before);
    expect(Date.parse(after.rotatedAt)).toBeGreaterThan(Date.parse(t.rotatedAt));
    // New connections go over the new session; the held one goes on over the old.
    expect(await get(base, '/v1/publicip/ip')).toMatchObject({ status: 200 });
    const n = held.count();
    await held.answered(n + 5);
    const result = await held.stop();
    expect(result.errors).toEqual([]);
    expect(new Set(result.localPorts).size).toBe(1);
  });

  it('moves new connections to direct when the ssh session dies, and back once ssh is healthy again', async () => {
    const [t] = (await list()).tunnels.filter((x: any) => x.spec.name === 'web');
    const pid = Number((await readFile(`${stateDir}/pids/${t.tunnelId}.ssh.2.pid`, 'utf8')).split(' ')[0]);
    const from = events.seen.length;
    const failover = (to: string) => (e: (typeof events.seen)[number]) =>
      events.seen.indexOf(e) >= from && e.subject === 'tunnel.evt.failover' && e.data.tunnelId === t.tunnelId && e.data.to === to;
    // The ssh client tunnel-manager runs for this tunnel: ended as a failed link would be.
    process.kill(pid, 'SIGKILL');
    const down = await events.next(failover('direct'), 10_000);
    expect(down.data).toMatchObject({ from: 'ssh', to: 'direct' });
    expect(down.data.reason).toMatch(/^switched to direct: ssh /);
    expect(await get(base, '/v1/publicip/ip')).toMatchObject({ status: 200 });
    // The session is started again with backoff; after the hold-down new connections return.
    const back = await events.next(failover('ssh'), 20_000);
    expect(back.data.reason).toMatch(/^back to ssh: healthy for/);
    // Both switches on the node's activity timeline, in the forwarder's words.
    const timeline = await eventually(
      () => sys.http('GET', `/v1/activity?nodeId=${node.nodeId}&kind=path_switched`),
      (r) => r.body.items?.some((i: any) => i.message === back.data.reason),
      10_000,
      'the switches on the timeline',
    );
    expect(timeline.body.items.map((i: any) => i.message)).toEqual(expect.arrayContaining([down.data.reason, back.data.reason]));
  });

  it('after a SIGKILL and a restart, the tunnel is back on its port with its key, and nothing the old run started is left', async () => {
    const [t] = (await list()).tunnels.filter((x: any) => x.spec.name === 'web');
    const pids = await Promise.all((await readdir(`${stateDir}/pids`)).map(async (f) => Number((await readFile(`${stateDir}/pids/${f}`, 'utf8')).split(' ')[0])));
    expect(pids.length).toBeGreaterThanOrEqual(2);
    await manager.stop('SIGKILL');
    // Orphaned, not ended: the sshd and the ssh client outlive a SIGKILL.
    expect(await living(pids)).toEqual(pids);
    manager = await sys.start('tunnel-manager', env);
    const view = await eventually(
      () => list(t.tunnelId),
      (r) => r.tunnels[0]?.status === 'open' && r.tunnels[0].paths[0].state === 'up' && r.tunnels[0].paths[0].active,
      20_000,
      'the tunnel open again, over ssh',
    );
    expect(view.tunnels[0].endpoint).toEqual(t.endpoint);
    expect(view.tunnels[0].paths[0].key.fingerprint).toBe(t.paths[0].key.fingerprint);
    expect(await get(base, '/v1/publicip/ip')).toMatchObject({ status: 200 });
    expect(await living(pids)).toEqual([]);
  });

  it('rotates when the schedule says so, and gives a tunnel whose key expired a new one; the endpoint serves throughout', async () => {
    const [t] = (await list()).tunnels.filter((x: any) => x.spec.name === 'web');
    const from = events.seen.length;
    const since = (subject: string) => (e: (typeof events.seen)[number]) => events.seen.indexOf(e) >= from && e.subject === subject && e.data.tunnelId === t.tunnelId;
    // A week has passed, as far as the table knows.
    await sys.db.query("update tunnels set rotated_at = now() - interval '8 days' where id = $1", [t.tunnelId]);
    const scheduled = await events.next(since('tunnel.evt.rotated'), 10_000);
    expect(scheduled.data).toMatchObject({ paths: ['ssh'], reason: 'scheduled' });
    const rotated = (await list(t.tunnelId)).tunnels[0];
    expect(rotated.paths[0].key.fingerprint).not.toBe(t.paths[0].key.fingerprint);
    expect(Date.parse(rotated.nextRotationAt)).toBeGreaterThan(Date.now() + 6 * 86_400_000);
    expect(await get(base, '/v1/publicip/ip')).toMatchObject({ status: 200 });

    // Its 90 days are over (the process was down, say): revoked, told, and replaced.
    await sys.db.query("update tunnel_keys set valid_until = now() - interval '1 second' where tunnel_id = $1 and revoked_at is null and superseded_at is null", [t.tunnelId]);
    const expired = await events.next(since('tunnel.evt.expired'), 10_000);
    expect(expired.data.reason).toBe(`the ssh key ${rotated.paths[0].key.fingerprint} expired at ${expired.data.reason.split(' expired at ')[1]}`);
    const replaced = await events.next((e) => since('tunnel.evt.rotated')(e) && e.data.reason === 'its key expired', 10_000);
    expect(replaced.data.paths).toEqual(['ssh']);
    // Its session retired (the overlap of an expired key is already over), then the key revoked.
    await eventually(
      () => sys.db.query<{ revoked_at: Date | null }>('select revoked_at from tunnel_keys where fingerprint = $1', [rotated.paths[0].key.fingerprint]),
      ([k]) => k?.revoked_at !== null,
      10_000,
      'the expired key revoked',
    );
    const view = await eventually(
      () => list(t.tunnelId),
      (r) => r.tunnels[0].paths[0].state === 'up' && r.tunnels[0].paths[0].active,
      15_000,
      'ssh up again with the new key',
    );
    expect(view.tunnels[0].paths[0].key.fingerprint).not.toBe(rotated.paths[0].key.fingerprint);
    expect(await get(base, '/v1/publicip/ip')).toMatchObject({ status: 200 });
  });

  it('refuses a tunnel it cannot build, naming why: an unknown node, an unpublished port, a taken name, no path that runs here', async () => {
    const failed = async (s: object) => {
      const r = await command('tunnel.cmd.open', { tunnelId: randomUUID(), spec: s });
      expect(r.status).toBe('failed');
      return r.data.reason as string;
    };
    const ghost = randomUUID();
    expect(await failed({ ...spec('ghost', [{ kind: 'ssh' }]), nodeId: ghost })).toBe(`unknown node ${ghost}`);
    expect(await failed({ ...spec('closed-port', [{ kind: 'ssh' }]), port: 9999 })).toBe('port 9999: the node publishes 8000, not 9999');
    expect(await failed(spec('web', [{ kind: 'direct', address: '127.0.0.1' }]))).toMatch(/^a tunnel named web exists already/);
    expect(await failed(spec('mesh-only', [{ kind: 'wireguard' }]))).toMatch(/^no path of this tunnel can run here: wireguard: the node's host is this edge/);
    // A tenant cannot aim the edge at an address of its choosing.
    expect(await failed(spec('elsewhere', [{ kind: 'direct', address: '10.9.9.9' }]))).toBe(
      'paths.0.address: 10.9.9.9 is not the address of a node host (TUNNEL_DIRECT_ADDRESSES)',
    );
    expect((await list()).tunnels.map((x: any) => x.spec.name)).toEqual(['web']);
    // Nor take more than its share of the ports every tenant draws from.
    const second = await command('tunnel.cmd.open', { tunnelId: randomUUID(), spec: spec('second', [{ kind: 'direct', address: '127.0.0.1' }]) });
    expect(second.status).toBe('fulfilled');
    expect(await failed(spec('third', [{ kind: 'direct', address: '127.0.0.1' }]))).toBe('the tenant holds 2 tunnels, the most allowed (TUNNEL_MAX_PER_TENANT)');
    expect((await command('tunnel.cmd.close', { tunnelId: second.data.result.tunnelId })).status).toBe('fulfilled');
    expect((await list()).tunnels.map((x: any) => x.spec.name)).toEqual(['web']);
  });

  it('closes a tunnel through the API: the endpoint refuses, the keys are gone from the edge and the disk', async () => {
    const [t] = (await list()).tunnels.filter((x: any) => x.spec.name === 'web');
    const [live] = await sys.db.query<{ listen_port: number }>('select listen_port from tunnel_keys where tunnel_id = $1 and revoked_at is null and superseded_at is null', [
      t.tunnelId,
    ]);
    expect(await get(live!.listen_port, '/v1/publicip/ip')).toMatchObject({ status: 200 });
    const placed = await sys.http('DELETE', `/v1/tunnels/${t.tunnelId}`);
    expect(placed.status, JSON.stringify(placed.body)).toBe(202);
    expect((await sys.waitForOrder(placed.body.id, ['fulfilled', 'failed'], { timeoutMs: 20_000 })).status).toBe('fulfilled');
    await events.next((e) => e.subject === 'tunnel.evt.closed' && e.data.tunnelId === t.tunnelId, 5000);
    expect((await list()).tunnels).toEqual([]);
    await expect(get(base, '/')).rejects.toThrow(/ECONNREFUSED/);
    // The session is gone from the edge too: nothing listens on its forward port.
    await eventually(
      () =>
        get(live!.listen_port, '/').then(
          () => 'open',
          (err: Error) => err.message,
        ),
      (r) => /ECONNREFUSED/.test(r),
      10_000,
      'the forward port closed',
    );
    expect(await sys.db.query('select 1 from tunnel_keys where tunnel_id = $1', [t.tunnelId])).toEqual([]);
    await expect(readFile(`${stateDir}/keys/${t.tunnelId}.ssh.2`)).rejects.toThrow(/ENOENT/);
  });
});

const get = (port: number, path: string) => plainGet('127.0.0.1', port, path);
