import { describe, expect, it } from 'vitest';
import type { PoolSpec } from '@switchyard/contracts';
import { Labels } from '@switchyard/docker';
import {
  containerName,
  containerSpec,
  EXIT_NODE_PORTS,
  imageOf,
  legacyVolumeName,
  nodePorts,
  nodeResources,
  portsToAllocate,
  publishedPorts,
  tenantBridgeName,
  tenantNetworkName,
  tenantNetworkSpec,
  volumeName,
  type SpecConfig,
} from '../src/container-spec.js';

const tenantId = '0c0ffee0-1234-4abc-8def-0123456789ab';
const poolId = '11111111-2222-4333-8444-555555555555';
const nodeId = '99999999-8888-4777-8666-555555555555';
const config: SpecConfig = { exitNodeImage: 'switchyard/exit-node:dev', publishHost: '127.0.0.1' };

const exitSpec: PoolSpec = { name: 'jp-exit', kind: 'exit', country: 'jp', nodes: { min: 2, max: 4 } };
const appSpec: PoolSpec = {
  name: 'blog',
  kind: 'app',
  image: 'example/blog:1',
  env: { MODE: 'production' },
  ports: [
    { name: 'http', containerPort: 80 },
    { name: 'admin', containerPort: 9090 },
  ],
  nodes: { min: 1, max: 1 },
};

// The host ports the manager chose for the node (see portsToAllocate).
const hostPortsOf = (spec: PoolSpec) => Object.fromEntries(nodePorts(spec).map((p, i) => [p.name, 41000 + i]));
const build = (spec: PoolSpec, ordinal = 3) => containerSpec({ tenantId, id: poolId, spec }, { id: nodeId, ordinal, hostPorts: hostPortsOf(spec) }, config);

describe('containerSpec for an exit pool', () => {
  const spec = build(exitSpec);

  it('uses the configured image unless the pool names one', () => {
    expect(spec.Image).toBe('switchyard/exit-node:dev');
    expect(build({ ...exitSpec, image: 'custom/gluetun:2' }).Image).toBe('custom/gluetun:2');
  });

  it('is named after the tenant, pool and ordinal', () => {
    expect(spec.name).toBe('sy-0c0ffee0-jp-exit-3');
    expect(containerName(tenantId, 'jp-exit', 3)).toBe(spec.name);
  });

  it('carries the labels containers are found by', () => {
    expect(spec.Labels).toEqual({
      [Labels.managed]: 'true',
      [Labels.tenant]: tenantId,
      [Labels.pool]: poolId,
      [Labels.node]: nodeId,
      [Labels.kind]: 'exit',
    });
  });

  it('selects the country, and the pool country wins over spec.env', () => {
    expect(spec.Env).toEqual(['SERVER_COUNTRIES=JP', `NODE_ID=${nodeId}`]);
    const withEnv = build({ ...exitSpec, env: { SERVER_COUNTRIES: 'US', FIREWALL: 'off' } });
    expect(withEnv.Env).toEqual(['SERVER_COUNTRIES=JP', 'FIREWALL=off', `NODE_ID=${nodeId}`]);
  });

  it("exposes proxy 8888 and control 8000, published on the publish host at the node's chosen ports", () => {
    expect(spec.ExposedPorts).toEqual({ '8888/tcp': {}, '8000/tcp': {} });
    expect(spec.HostConfig?.PortBindings).toEqual({
      '8888/tcp': [{ HostIp: '127.0.0.1', HostPort: '41000' }],
      '8000/tcp': [{ HostIp: '127.0.0.1', HostPort: '41001' }],
    });
    expect(nodePorts(exitSpec)).toEqual(EXIT_NODE_PORTS);
  });

  it('refuses to leave a port to Docker: a node without a chosen host port has no spec', () => {
    expect(() => containerSpec({ tenantId, id: poolId, spec: exitSpec }, { id: nodeId, ordinal: 1, hostPorts: { proxy: 41000 } }, config)).toThrow(
      /no host port chosen for port "control"/,
    );
  });

  it('runs an init as PID 1 and has no restart policy', () => {
    expect(spec.HostConfig?.Init).toBe(true);
    expect(spec.HostConfig?.RestartPolicy).toEqual({ Name: 'no' });
  });

  it('publishes on another host address when configured', () => {
    const other = containerSpec({ tenantId, id: poolId, spec: exitSpec }, { id: nodeId, ordinal: 1, hostPorts: hostPortsOf(exitSpec) }, { ...config, publishHost: '10.0.0.5' });
    expect(other.HostConfig?.PortBindings?.['8888/tcp']).toEqual([{ HostIp: '10.0.0.5', HostPort: '41000' }]);
  });

  it('is pure: the same input gives the same spec', () => {
    expect(build(exitSpec)).toEqual(spec);
  });
});

describe('containerSpec for an app pool', () => {
  const spec = build(appSpec, 1);

  it("uses the spec's image, env and ports", () => {
    expect(spec.Image).toBe('example/blog:1');
    expect(spec.Env).toEqual(['MODE=production']);
    expect(spec.ExposedPorts).toEqual({ '80/tcp': {}, '9090/tcp': {} });
    expect(spec.HostConfig?.PortBindings).toEqual({
      '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '41000' }],
      '9090/tcp': [{ HostIp: '127.0.0.1', HostPort: '41001' }],
    });
    expect(spec.Labels?.[Labels.kind]).toBe('app');
    expect(spec.name).toBe('sy-0c0ffee0-blog-1');
  });

  it('refuses an app pool without an image', () => {
    const { image: _image, ...noImage } = appSpec;
    expect(() => imageOf(noImage, config)).toThrow(/no image/);
  });
});

describe('publishedPorts', () => {
  it('names the ports Docker chose on the publish host', () => {
    const bindings = {
      '8888/tcp': [{ HostIp: '127.0.0.1', HostPort: '49153' }],
      '8000/tcp': [{ HostIp: '127.0.0.1', HostPort: '49154' }],
    };
    expect(publishedPorts(exitSpec, bindings, '127.0.0.1')).toEqual([
      { name: 'proxy', containerPort: 8888, hostIp: '127.0.0.1', hostPort: 49153 },
      { name: 'control', containerPort: 8000, hostIp: '127.0.0.1', hostPort: 49154 },
    ]);
  });

  it('leaves out ports of a stopped container and bindings on other addresses', () => {
    expect(publishedPorts(exitSpec, { '8888/tcp': null, '8000/tcp': [{ HostIp: '0.0.0.0', HostPort: '1' }] }, '127.0.0.1')).toEqual([]);
    expect(publishedPorts(exitSpec, undefined, '127.0.0.1')).toEqual([]);
  });
});

describe('containerSpec on the host network', () => {
  const hostExit: PoolSpec = { ...exitSpec, network: 'host' };
  const hostPorts = { proxy: 40001, control: 40002 };
  const spec = containerSpec({ tenantId, id: poolId, spec: hostExit }, { id: nodeId, ordinal: 2, hostPorts }, config);

  it("shares the host's network and publishes nothing through Docker", () => {
    expect(spec.HostConfig?.NetworkMode).toBe('host');
    expect(spec.HostConfig?.PortBindings).toBeUndefined();
    expect(spec.ExposedPorts).toBeUndefined();
    // Docker refuses a hostname of the container's own on the host network.
    expect(spec.Hostname).toBeUndefined();
  });

  it('tells an exit node its ports and to bind the publish host only', () => {
    expect(spec.Env).toEqual(expect.arrayContaining(['HTTPPROXY_PORT=40001', 'CONTROL_PORT=40002', 'BIND_ADDRESS=127.0.0.1']));
  });

  it('names the chosen ports on the publish host, whatever Docker reports', () => {
    expect(publishedPorts(hostExit, {}, '127.0.0.1', hostPorts)).toEqual([
      { name: 'proxy', containerPort: 8888, hostIp: '127.0.0.1', hostPort: 40001 },
      { name: 'control', containerPort: 8000, hostIp: '127.0.0.1', hostPort: 40002 },
    ]);
  });

  it('allocates only ports that have an env variable and no port yet', () => {
    expect(portsToAllocate(hostExit, {})).toEqual(['proxy', 'control']);
    expect(portsToAllocate(hostExit, { proxy: 40001 })).toEqual(['control']);
    expect(portsToAllocate(hostExit, hostPorts)).toEqual([]);
    const app: PoolSpec = {
      ...appSpec,
      network: 'host',
      ports: [
        { name: 'http', containerPort: 80, env: 'PORT' },
        { name: 'fixed', containerPort: 9090 },
      ],
    };
    expect(portsToAllocate(app, {})).toEqual(['http']);
    // A port the image cannot be told about stays where the image puts it.
    expect(publishedPorts(app, {}, '127.0.0.1', { http: 41000 })).toEqual([
      { name: 'http', containerPort: 80, hostIp: '127.0.0.1', hostPort: 41000 },
      { name: 'fixed', containerPort: 9090, hostIp: '127.0.0.1', hostPort: 9090 },
    ]);
    const appSpecOnHost = containerSpec({ tenantId, id: poolId, spec: app }, { id: nodeId, ordinal: 1, hostPorts: { http: 41000 } }, config);
    expect(appSpecOnHost.Env).toEqual(['MODE=production', 'PORT=41000']);
  });
});

describe('portsToAllocate on the bridge network', () => {
  it('allocates every port once, env or not, so a node keeps its ports across sleep and wake', () => {
    expect(portsToAllocate(exitSpec, {})).toEqual(['proxy', 'control']);
    expect(portsToAllocate(appSpec, { http: 41000 })).toEqual(['admin']);
    expect(portsToAllocate(appSpec, { http: 41000, admin: 41001 })).toEqual([]);
  });

  it('names the pinned ports once Docker publishes them', () => {
    const bindings = { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '41000' }], '9090/tcp': [{ HostIp: '127.0.0.1', HostPort: '41001' }] };
    expect(publishedPorts(appSpec, bindings, '127.0.0.1', { http: 41000, admin: 41001 })).toEqual([
      { name: 'http', containerPort: 80, hostIp: '127.0.0.1', hostPort: 41000 },
      { name: 'admin', containerPort: 9090, hostIp: '127.0.0.1', hostPort: 41001 },
    ]);
  });
});

describe('containerSpec placement and volumes', () => {
  it("passes region, city and the node's server under gluetun's names", () => {
    const spec = containerSpec(
      { tenantId, id: poolId, spec: { ...exitSpec, region: 'Tokyo', city: 'Shibuya' } },
      { id: nodeId, ordinal: 1, server: 'jp-tok-01.example.net', hostPorts: hostPortsOf(exitSpec) },
      config,
    );
    expect(spec.Env).toEqual(expect.arrayContaining(['SERVER_COUNTRIES=JP', 'SERVER_REGIONS=Tokyo', 'SERVER_CITIES=Shibuya', 'SERVER_HOSTNAMES=jp-tok-01.example.net']));
  });

  it('mounts a named volume per node at each mount path', () => {
    const spec = build({ ...appSpec, volumes: [{ name: 'data', mountPath: '/var/lib/data' }] }, 2);
    expect(spec.HostConfig?.Mounts).toEqual([expect.objectContaining({ Type: 'volume', Source: volumeName(poolId, 'data', 2), Target: '/var/lib/data' })]);
    expect(volumeName(poolId, 'data', 2)).toBe(`sy-${poolId}-2-data`);
  });

  it("names volumes by the full pool id: another tenant's pool of the same name, whose tenant id starts alike, gets its own", () => {
    const otherTenant = `${tenantId.slice(0, 8)}-ffff-4fff-8fff-ffffffffffff`;
    const otherPool = '22222222-2222-4333-8444-555555555555';
    const withVolume = { ...appSpec, volumes: [{ name: 'data', mountPath: '/data' }] };
    const mine = containerSpec({ tenantId, id: poolId, spec: withVolume }, { id: nodeId, ordinal: 1, hostPorts: hostPortsOf(appSpec) }, config);
    const theirs = containerSpec({ tenantId: otherTenant, id: otherPool, spec: withVolume }, { id: nodeId, ordinal: 1, hostPorts: hostPortsOf(appSpec) }, config);
    // The old names met: tenant B's node would have mounted tenant A's data.
    expect(legacyVolumeName(tenantId, 'blog', 'data', 1)).toBe(legacyVolumeName(otherTenant, 'blog', 'data', 1));
    expect(mine.HostConfig?.Mounts?.[0]?.Source).not.toBe(theirs.HostConfig?.Mounts?.[0]?.Source);
  });

  it('keeps the old name for a volume the pool already has under it, and the new one for every other', () => {
    const withVolumes = {
      ...appSpec,
      volumes: [
        { name: 'data', mountPath: '/data' },
        { name: 'logs', mountPath: '/logs' },
      ],
    };
    const legacyVolumes = new Set([legacyVolumeName(tenantId, 'blog', 'data', 1)]);
    const spec = containerSpec({ tenantId, id: poolId, spec: withVolumes }, { id: nodeId, ordinal: 1, hostPorts: hostPortsOf(appSpec), legacyVolumes }, config);
    expect(spec.HostConfig?.Mounts?.map((m) => m.Source)).toEqual(['sy-0c0ffee0-blog-1-data', volumeName(poolId, 'logs', 1)]);
  });
});

describe('containerSpec network', () => {
  it("puts a bridge node on its tenant's network, never Docker's default bridge", () => {
    for (const spec of [exitSpec, appSpec, { ...appSpec, network: 'bridge' as const }]) {
      expect(build(spec).HostConfig?.NetworkMode).toBe(`sy-net-${tenantId}`);
    }
    expect(tenantNetworkName(tenantId)).toBe(`sy-net-${tenantId}`);
  });

  it('makes the tenant network a labelled bridge without inter-container traffic, on a host interface of a known prefix', () => {
    const net = tenantNetworkSpec(tenantId);
    expect(net).toMatchObject({ Name: `sy-net-${tenantId}`, Driver: 'bridge', Labels: { [Labels.managed]: 'true', [Labels.tenant]: tenantId } });
    expect(net.Options?.['com.docker.network.bridge.enable_icc']).toBe('false');
    expect(net.Options?.['com.docker.network.bridge.name']).toBe(tenantBridgeName(tenantId));
    expect(tenantBridgeName(tenantId)).toMatch(/^syt[0-9a-f]{12}$/);
    expect(tenantBridgeName(tenantId)).not.toBe(tenantBridgeName(`${tenantId.slice(0, 8)}-ffff-4fff-8fff-ffffffffffff`));
  });
});

describe('containerSpec limits and privileges', () => {
  const policy = { defaults: { memoryMb: 256, cpus: 0.5, pids: 128 }, maxima: { memoryMb: 2048, cpus: 2, pids: 512 } };
  const limited: SpecConfig = { ...config, resources: policy };
  const hostConfigOf = (spec: PoolSpec, c: SpecConfig = limited) =>
    containerSpec({ tenantId, id: poolId, spec }, { id: nodeId, ordinal: 1, hostPorts: hostPortsOf(spec) }, c).HostConfig ?? {};

  it("gives a pool that asks for nothing the operator's defaults, swap included in the memory", () => {
    const hc = hostConfigOf(appSpec);
    expect(hc).toMatchObject({ Memory: 256 * 1024 * 1024, MemorySwap: 256 * 1024 * 1024, NanoCpus: 500_000_000, PidsLimit: 128 });
  });

  it('gives what the pool asks for within the maxima', () => {
    const hc = hostConfigOf({ ...appSpec, resources: { memoryMb: 1024, cpus: 1.5, pids: 300 } });
    expect(hc).toMatchObject({ Memory: 1024 * 1024 * 1024, NanoCpus: 1_500_000_000, PidsLimit: 300 });
  });

  it('holds a request above the maxima to the maxima', () => {
    const hc = hostConfigOf({ ...appSpec, resources: { memoryMb: 1_048_576, cpus: 1024, pids: 1_000_000 } });
    expect(hc).toMatchObject({ Memory: 2048 * 1024 * 1024, MemorySwap: 2048 * 1024 * 1024, NanoCpus: 2_000_000_000, PidsLimit: 512 });
    expect(nodeResources({ ...exitSpec, resources: { memoryMb: 4096 } }, limited)).toEqual({ memoryMb: 2048, cpus: 0.5, pids: 128 });
  });

  it('bounds every node even without a configured policy', () => {
    const hc = hostConfigOf({ ...appSpec, resources: { memoryMb: 1_048_576 } }, config);
    expect(hc.Memory).toBe(2048 * 1024 * 1024);
    expect(hc.PidsLimit).toBeGreaterThan(0);
    expect(hc.NanoCpus).toBeGreaterThan(0);
  });

  it('drops every capability of an app node and adds back only what an entrypoint needs to step down to its user', () => {
    const hc = hostConfigOf(appSpec);
    expect(hc.CapDrop).toEqual(['ALL']);
    expect(hc.CapAdd).toEqual(['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'SETGID', 'SETUID']);
    expect(hc.SecurityOpt).toEqual(['no-new-privileges']);
    expect(hc.Devices).toBeUndefined();
    expect(hc.Privileged).toBeUndefined();
  });

  it('gives an exit node what gluetun needs: NET_ADMIN, CHOWN, DAC_OVERRIDE and the TUN device', () => {
    const hc = hostConfigOf(exitSpec);
    expect(hc.CapDrop).toEqual(['ALL']);
    expect(hc.CapAdd).toEqual(['NET_ADMIN', 'CHOWN', 'DAC_OVERRIDE']);
    expect(hc.SecurityOpt).toEqual(['no-new-privileges']);
    expect(hc.Devices).toEqual([{ PathOnHost: '/dev/net/tun', PathInContainer: '/dev/net/tun', CgroupPermissions: 'rwm' }]);
  });

  it("gives an exit node on the host's network neither NET_ADMIN nor the TUN device: they would act on the host", () => {
    const hc = hostConfigOf({ ...exitSpec, network: 'host' });
    expect(hc.CapDrop).toEqual(['ALL']);
    expect(hc.CapAdd).toEqual([]);
    expect(hc.Devices).toBeUndefined();
    expect(hc).toMatchObject({ NetworkMode: 'host', Memory: 256 * 1024 * 1024, PidsLimit: 128 });
  });
});

describe("containerSpec: an exit node's firewall is the operator's", () => {
  const pool = { tenantId: '0b3c2f0e-5d4a-4f1e-9f7a-1c2d3e4f5a6b', id: '11111111-1111-4111-8111-111111111111' };
  const spec = { name: 'jp', kind: 'exit', country: 'JP', nodes: { min: 1, max: 1 }, env: { FIREWALL_OUTBOUND_SUBNETS: '10.0.0.0/8' } } as const;
  const node = { id: '22222222-2222-4222-8222-222222222222', ordinal: 0, hostPorts: { proxy: 41000, control: 41001 } };

  it("drops a pool's own FIREWALL_OUTBOUND_SUBNETS and sets EXIT_NODE_OUTBOUND_SUBNETS", () => {
    const closed = containerSpec({ ...pool, spec }, node, { exitNodeImage: 'x', publishHost: '127.0.0.1' });
    expect(closed.Env!.filter((e) => e.startsWith('FIREWALL_OUTBOUND_SUBNETS='))).toEqual([]);
    const opened = containerSpec({ ...pool, spec }, node, { exitNodeImage: 'x', publishHost: '127.0.0.1', outboundSubnets: '127.0.0.1/32' });
    expect(opened.Env!.filter((e) => e.startsWith('FIREWALL_OUTBOUND_SUBNETS='))).toEqual(['FIREWALL_OUTBOUND_SUBNETS=127.0.0.1/32']);
  });

  it('does the same for an app pool running the exit-node image: its env cannot open private addresses', () => {
    const app = { name: 'px', kind: 'app', image: 'switchyard/exit-node:dev', nodes: { min: 1, max: 1 }, env: { FIREWALL_OUTBOUND_SUBNETS: '0.0.0.0/0', KEEP: 'me' } } as const;
    const closed = containerSpec({ ...pool, spec: app }, node, { exitNodeImage: 'x', publishHost: '127.0.0.1' });
    expect(closed.Env!.filter((e) => e.startsWith('FIREWALL_OUTBOUND_SUBNETS='))).toEqual([]);
    expect(closed.Env).toContain('KEEP=me');
    const opened = containerSpec({ ...pool, spec: app }, node, { exitNodeImage: 'x', publishHost: '127.0.0.1', outboundSubnets: '127.0.0.1/32' });
    expect(opened.Env!.filter((e) => e.startsWith('FIREWALL_OUTBOUND_SUBNETS='))).toEqual(['FIREWALL_OUTBOUND_SUBNETS=127.0.0.1/32']);
  });
});
