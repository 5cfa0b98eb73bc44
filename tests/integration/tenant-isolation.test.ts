import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBus } from '@switchyard/bus';
import { MAX_POOL_NODES } from '@switchyard/contracts';
import { docker, EXIT_NODE_IMAGE, HTTP_APP_IMAGE, HTTP_APP_PORT, startTestSystem, type TestSystem } from '@switchyard/testkit';

// Two customers on one Docker host, each with a member key and assumed hostile: what one
// tenant's container can reach of the other's, what a node may use, and what is left of a
// pool's data once it is deleted. Real engine, real containers.

interface Tenant {
  readonly id: string;
  readonly key: string;
}

const LIMITS = { memoryMb: 256, cpus: 0.5, pids: 128 };

/**
 * Runs a TCP connect from inside a container (its image has node, no shell) and says how it
 * ended: "connected", "timeout" (dropped) or the error code (ECONNREFUSED, EHOSTUNREACH, …).
 */
async function connectFrom(containerId: string, host: string, port: number): Promise<string> {
  const script = `const s=require('net').connect({host:${JSON.stringify(host)},port:${port},timeout:2000});
s.on('connect',()=>{console.log('connected');process.exit(0)});
s.on('timeout',()=>{console.log('timeout');process.exit(0)});
s.on('error',(e)=>{console.log(e.code);process.exit(0)});`;
  const exec = await docker.getContainer(containerId).exec({ Cmd: ['/usr/local/bin/node', '-e', script], AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  docker.modem.demuxStream(stream, out, out);
  await once(stream, 'end');
  return Buffer.concat(chunks).toString().trim();
}

describe('tenant isolation on the Docker engine', () => {
  let sys: TestSystem;
  let a: Tenant;
  let b: Tenant;

  const newTenant = async (name: string): Promise<Tenant> => {
    const res = await sys.http('POST', '/v1/tenants', { body: { name } });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return { id: res.body.id, key: res.body.apiKey };
  };
  const order = async (t: Tenant, body: unknown) => {
    const placed = await sys.http('POST', '/v1/orders', { body, key: t.key });
    expect(placed.status, JSON.stringify(placed.body)).toBe(202);
    return sys.waitForOrder(placed.body.id, ['fulfilled', 'failed'], { key: t.key, timeoutMs: 60_000 });
  };
  const appPool = (name: string, extra: Record<string, unknown> = {}) => ({
    type: 'pool.create',
    pool: { name, kind: 'app', image: HTTP_APP_IMAGE, network: 'bridge', ports: [{ name: 'http', containerPort: HTTP_APP_PORT }], nodes: { min: 1, max: 1 }, ...extra },
  });
  const createApp = async (t: Tenant, name: string, extra: Record<string, unknown> = {}) => {
    const done = await order(t, appPool(name, extra));
    expect(done.status, done.reason).toBe('fulfilled');
    const poolId = done.result.poolId as string;
    const [container] = await docker.listContainers({ all: true, filters: { label: [`io.switchyard.pool=${poolId}`] } });
    expect(container).toBeDefined();
    return { poolId, info: await docker.getContainer(container!.Id).inspect() };
  };
  const poolVolumes = async (poolId: string) => (await docker.listVolumes({ filters: { label: [`io.switchyard.pool=${poolId}`] } })).Volumes ?? [];
  const networkOf = async (t: Tenant) => docker.listNetworks({ filters: { name: [`sy-net-${t.id}`] } });

  beforeAll(async () => {
    sys = await startTestSystem();
    // Members here run the test app image, and one pool holds 100 nodes (the pool maximum,
    // above the default tenant quota).
    await sys.start('api-gateway', { POOL_IMAGES: `${HTTP_APP_IMAGE},${EXIT_NODE_IMAGE}`, TENANT_MAX_NODES: '1000' });
    await sys.start('exit-node-manager');
    a = await newTenant('alpha');
    b = await newTenant('beta');
  }, 60_000);
  afterAll(async () => sys?.close());

  describe("with both tenants' app pools running", () => {
    let mine: Awaited<ReturnType<typeof createApp>>;
    let theirs: Awaited<ReturnType<typeof createApp>>;
    const addressOf = (info: typeof mine.info, t: Tenant) => info.NetworkSettings.Networks[`sy-net-${t.id}`]!;
    const hostPortOf = (info: typeof mine.info) => Number(info.NetworkSettings.Ports[`${HTTP_APP_PORT}/tcp`]![0]!.HostPort);

    beforeAll(async () => {
      mine = await createApp(a, 'web', { resources: LIMITS });
      theirs = await createApp(b, 'web');
    }, 90_000);

    it("puts each tenant's node on its own network, never Docker's default bridge", () => {
      expect(mine.info.HostConfig.NetworkMode).toBe(`sy-net-${a.id}`);
      expect(Object.keys(mine.info.NetworkSettings.Networks)).toEqual([`sy-net-${a.id}`]);
      expect(Object.keys(theirs.info.NetworkSettings.Networks)).toEqual([`sy-net-${b.id}`]);
    });

    it("cannot reach the other tenant's container on any port: directly, or through either bridge's gateway", async () => {
      const them = addressOf(theirs.info, b);
      const us = addressOf(mine.info, a);
      const port = hostPortOf(theirs.info);
      // The probe works: the node reaches its own server.
      expect(await connectFrom(mine.info.Id, '127.0.0.1', HTTP_APP_PORT)).toBe('connected');
      // Its server, and a port nothing listens on: Docker drops traffic between two networks.
      expect(await connectFrom(mine.info.Id, them.IPAddress, HTTP_APP_PORT)).toBe('timeout');
      expect(await connectFrom(mine.info.Id, them.IPAddress, 22)).toBe('timeout');
      // The published port is bound to 127.0.0.1 only; the host's bridge addresses do not lead to it.
      expect(await connectFrom(mine.info.Id, them.Gateway, port)).toBe('ECONNREFUSED');
      expect(await connectFrom(mine.info.Id, us.Gateway, port)).toBe('ECONNREFUSED');
      // And the other way round.
      expect(await connectFrom(theirs.info.Id, us.IPAddress, HTTP_APP_PORT)).toBe('timeout');
    }, 30_000);

    it("cannot reach another node of its own tenant directly either: the tenant's policy is enforced at the load balancer", async () => {
      const sibling = await createApp(a, 'sibling');
      expect(await connectFrom(mine.info.Id, addressOf(sibling.info, a).IPAddress, HTTP_APP_PORT)).toBe('timeout');
    }, 60_000);

    it('runs the node with the limits it asked for, no capability beyond its set and no new privileges', () => {
      const hc = mine.info.HostConfig;
      expect({ Memory: hc.Memory, MemorySwap: hc.MemorySwap, NanoCpus: hc.NanoCpus, PidsLimit: hc.PidsLimit }).toEqual({
        Memory: LIMITS.memoryMb * 1024 * 1024,
        MemorySwap: LIMITS.memoryMb * 1024 * 1024,
        NanoCpus: LIMITS.cpus * 1e9,
        PidsLimit: LIMITS.pids,
      });
      expect(hc.CapDrop).toEqual(['ALL']);
      expect(hc.CapAdd).toEqual(['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'SETGID', 'SETUID']);
      expect(hc.SecurityOpt).toEqual(['no-new-privileges']);
      expect(hc.Privileged).toBe(false);
    });

    it("gives a pool that asks for nothing the operator's defaults", () => {
      const hc = theirs.info.HostConfig;
      expect(hc.Memory).toBe(512 * 1024 * 1024);
      expect(hc.NanoCpus).toBe(1e9);
      expect(hc.PidsLimit).toBe(256);
    });

    it("refuses a pool that names another tenant's network, or Docker's default bridge", async () => {
      for (const network of [`sy-net-${b.id}`, 'default']) {
        const res = await sys.http('POST', '/v1/orders', { body: appPool('sneaky', { network }), key: a.key });
        expect(res.status).toBe(400);
        expect(JSON.stringify(res.body)).toContain('network');
      }
    });
  });

  it("starts an exit node with gluetun's capabilities and the TUN device, bounded like any node", async () => {
    const done = await order(a, { type: 'pool.create', pool: { name: 'exit-se', kind: 'exit', country: 'SE', nodes: { min: 1, max: 1 } } });
    expect(done.status, done.reason).toBe('fulfilled');
    const [c] = await docker.listContainers({ filters: { label: [`io.switchyard.pool=${done.result.poolId}`] } });
    const hc = (await docker.getContainer(c!.Id).inspect()).HostConfig;
    expect(hc.CapDrop).toEqual(['ALL']);
    expect(hc.CapAdd).toEqual(['NET_ADMIN', 'CHOWN', 'DAC_OVERRIDE']);
    expect(hc.Devices).toEqual([{ PathOnHost: '/dev/net/tun', PathInContainer: '/dev/net/tun', CgroupPermissions: 'rwm' }]);
    expect(hc.SecurityOpt).toEqual(['no-new-privileges']);
    expect(hc.NetworkMode).toBe(`sy-net-${a.id}`);
    expect(hc.PidsLimit).toBe(256);
    expect((await order(a, { type: 'pool.delete', poolId: done.result.poolId })).status).toBe('fulfilled');
  }, 60_000);

  it("removes a pool's volumes with it, and keeps them when the delete order says keepVolumes", async () => {
    const volumes = [{ name: 'data', mountPath: '/data' }];
    const gone = await createApp(b, 'gone', { volumes });
    const kept = await createApp(b, 'kept', { volumes });
    expect((await poolVolumes(gone.poolId)).map((v) => v.Name)).toEqual([`sy-${gone.poolId}-1-data`]);
    expect((await poolVolumes(kept.poolId)).map((v) => v.Name)).toEqual([`sy-${kept.poolId}-1-data`]);

    expect((await order(b, { type: 'pool.delete', poolId: gone.poolId })).status).toBe('fulfilled');
    expect(await poolVolumes(gone.poolId)).toEqual([]);
    expect((await order(b, { type: 'pool.delete', poolId: kept.poolId, keepVolumes: true })).status).toBe('fulfilled');
    expect((await poolVolumes(kept.poolId)).map((v) => v.Name)).toEqual([`sy-${kept.poolId}-1-data`]);
  }, 90_000);

  it('refuses keepVolumes on an order other than pool.delete, naming the field', async () => {
    const res = await sys.http('POST', '/v1/orders', { body: { ...appPool('keeper'), keepVolumes: true }, key: b.key });
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.body)).toContain('keepVolumes');
  });

  it("removes a tenant's network with its last pool", async () => {
    const t = await newTenant('gamma');
    const first = await createApp(t, 'one');
    const second = await createApp(t, 'two');
    expect(await networkOf(t)).toHaveLength(1);
    expect((await order(t, { type: 'pool.delete', poolId: first.poolId })).status).toBe('fulfilled');
    expect(await networkOf(t)).toHaveLength(1);
    expect((await order(t, { type: 'pool.delete', poolId: second.poolId })).status).toBe('fulfilled');
    expect(await networkOf(t)).toEqual([]);
  }, 90_000);

  it(`refuses node.add to a pool that has ${MAX_POOL_NODES} nodes, and the snapshot stays valid`, async () => {
    const t = await newTenant('delta');
    // The pool node.add fills ("exit-<country>"), made empty through the API. Its 100 nodes are
    // then written as the manager would after 100 adds and 100 stops: starting 100 containers
    // only to stop them would test Docker, not the limit.
    const created = await order(t, { type: 'pool.create', pool: { name: 'exit-no', kind: 'exit', country: 'NO', nodes: { min: 0, max: MAX_POOL_NODES } } });
    expect(created.status, created.reason).toBe('fulfilled');
    const poolId = created.result.poolId as string;
    await sys.db.query(
      `insert into nodes (tenant_id, id, pool_id, ordinal, name, status)
       select $1, gen_random_uuid(), $2, o, 'exit-no-' || o, 'stopped' from generate_series(1, $3::int) o`,
      [t.id, poolId, MAX_POOL_NODES],
    );
    await sys.db.query(`update pools set desired_nodes = $3, spec = jsonb_set(spec, '{nodes,min}', to_jsonb($3::int)) where tenant_id = $1 and id = $2`, [
      t.id,
      poolId,
      MAX_POOL_NODES,
    ]);

    const added = await order(t, { type: 'node.add', country: 'NO' });
    expect(added.status).toBe('failed');
    expect(added.reason).toBe(`pool exit-no has ${MAX_POOL_NODES} nodes, the most a pool may have`);
    expect(await docker.listContainers({ all: true, filters: { label: [`io.switchyard.pool=${poolId}`] } })).toEqual([]);

    // The reply is checked against its schema on receipt: a pool past the maximum would fail here.
    const nc = await sys.natsClient();
    const snapshot = await createBus(nc, 'load-balancer').request('pool.req.snapshot', { tenantId: t.id });
    expect(snapshot.pools.find((p) => p.poolId === poolId)?.spec.nodes).toEqual({ min: MAX_POOL_NODES, max: MAX_POOL_NODES });
    expect(snapshot.nodes.filter((n) => n.poolId === poolId)).toHaveLength(MAX_POOL_NODES);
    expect(await sys.db.query('select 1 from nodes where pool_id = $1', [poolId])).toHaveLength(MAX_POOL_NODES);
  }, 90_000);
});
