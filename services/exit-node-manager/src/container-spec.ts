import { createHash } from 'node:crypto';
import type { ContainerCreateOptions, NetworkCreateOptions } from 'dockerode';
import { POOL_MAXIMA_DEFAULTS } from '@switchyard/config';
import { Labels } from '@switchyard/docker';
import type { PoolSpec, PublishedPort } from '@switchyard/contracts';
import { open, SecretsError } from '@switchyard/secrets';
import { OrderFailure } from '@switchyard/service-kit';

export interface SpecPool {
  readonly tenantId: string;
  readonly id: string;
  readonly spec: PoolSpec;
}

export interface SpecNode {
  readonly id: string;
  readonly ordinal: number;
  /** The VPN server the node was added with (node.cmd.add). */
  readonly server?: string | null;
  /** The host port chosen for each port name, once for the node's life (see `portsToAllocate`). */
  readonly hostPorts?: Readonly<Record<string, number>>;
  /**
   * Names of the volumes the pool has (found by its label). A node whose volume has the old name
   * (see `legacyVolumeName`) keeps mounting it when its container is made again.
   */
  readonly legacyVolumes?: ReadonlySet<string>;
}

/** What one node may use; see `nodeResources`. */
export interface ResourceLimits {
  readonly memoryMb: number;
  readonly cpus: number;
  readonly pids: number;
}

/** The operator's defaults and maxima (POOL_DEFAULT_* and POOL_MAX_* of the manager's config). */
export interface ResourcePolicy {
  readonly defaults: ResourceLimits;
  readonly maxima: ResourceLimits;
}

export const DEFAULT_RESOURCE_POLICY: ResourcePolicy = Object.freeze({
  defaults: Object.freeze({ memoryMb: 512, cpus: 1, pids: 256 }),
  maxima: POOL_MAXIMA_DEFAULTS,
});

export interface SpecConfig {
  /** Image of exit pools whose spec names none. */
  readonly exitNodeImage: string;
  /** The one host address ports are published on. */
  readonly publishHost: string;
  /** DEFAULT_RESOURCE_POLICY when absent. */
  readonly resources?: ResourcePolicy;
  /** FIREWALL_OUTBOUND_SUBNETS of every node, whatever its pool's kind; absent or empty: none. */
  readonly outboundSubnets?: string;
  /** SECRETS_KEY: opens a pool's sealed secretEnv; unset, a pool with secrets gets no node. */
  readonly secretsKey?: Buffer | undefined;
}

export interface NodePort {
  readonly name: string;
  readonly containerPort: number;
  /** On the host network: the variable that tells the image which port to listen on. */
  readonly env?: string;
}

/** What every exit node serves: the HTTP proxy and the control API. */
export const EXIT_NODE_PORTS: readonly NodePort[] = Object.freeze([
  { name: 'proxy', containerPort: 8888, env: 'HTTPPROXY_PORT' },
  { name: 'control', containerPort: 8000, env: 'CONTROL_PORT' },
]);

export function nodePorts(spec: PoolSpec): NodePort[] {
  if (spec.kind === 'exit') return [...EXIT_NODE_PORTS];
  return (spec.ports ?? []).map((p) => ({ name: p.name, containerPort: p.containerPort, ...(p.env ? { env: p.env } : {}) }));
}

function isHostNetwork(spec: PoolSpec): boolean {
  return spec.network === 'host';
}

/**
 * Names of the ports a node still needs a host port for. Every node keeps its host ports for
 * its whole life (restarts, replacements, sleep and wake), so clients and the socket activator
 * reach a sleeping node where it was. A host-network port without `env` cannot be moved, so it
 * listens on its containerPort.
 */
export function portsToAllocate(spec: PoolSpec, hostPorts: Readonly<Record<string, number>>): string[] {
  const host = isHostNetwork(spec);
  return nodePorts(spec)
    .filter((p) => (host ? p.env : true) && !hostPorts[p.name])
    .map((p) => p.name);
}

function hostPortOf(port: NodePort, hostPorts: Readonly<Record<string, number>> | undefined): number {
  return (port.env ? hostPorts?.[port.name] : undefined) ?? port.containerPort;
}

export function imageOf(spec: PoolSpec, config: Pick<SpecConfig, 'exitNodeImage'>): string {
  if (spec.kind === 'exit') return spec.image ?? config.exitNodeImage;
  if (!spec.image) throw new Error(`app pool "${spec.name}" has no image`);
  return spec.image;
}

export function nodeName(poolName: string, ordinal: number): string {
  return `${poolName}-${ordinal}`;
}

/**
 * Readable in `docker ps` and unique per tenant and pool name; never parsed back — containers
 * are found by their labels.
 */
export function containerName(tenantId: string, poolName: string, ordinal: number): string {
  return `sy-${tenantId.slice(0, 8)}-${poolName}-${ordinal}`;
}

function portKey(containerPort: number): string {
  return `${containerPort}/tcp`;
}

/**
 * The only place a secret is plaintext outside the gateway: the container's own environment.
 * A value that cannot be opened fails the node's order with the variable's name, never its value.
 */
function openSecrets(spec: PoolSpec, config: SpecConfig): Record<string, string> {
  const opened: Record<string, string> = {};
  for (const [name, sealed] of Object.entries(spec.secretEnv ?? {})) {
    if (!config.secretsKey) throw new OrderFailure(`secretEnv.${name}: this exit-node-manager has no SECRETS_KEY to open it`);
    try {
      opened[name] = open(sealed, config.secretsKey);
    } catch (err) {
      if (err instanceof SecretsError) throw new OrderFailure(`secretEnv.${name}: ${err.message}`);
      throw err;
    }
  }
  return opened;
}

function environment(spec: PoolSpec, node: SpecNode, config: SpecConfig): string[] {
  const vars: Record<string, string> = { ...spec.env, ...openSecrets(spec, config) };
  // The pool's placement is authoritative: an env entry cannot send an exit node elsewhere.
  // The names are gluetun's, so the production image reads them as they are.
  if (spec.kind === 'exit') {
    if (spec.country) vars['SERVER_COUNTRIES'] = spec.country.toUpperCase();
    if (spec.region) vars['SERVER_REGIONS'] = spec.region;
    if (spec.city) vars['SERVER_CITIES'] = spec.city;
    if (node.server) vars['SERVER_HOSTNAMES'] = node.server;
    // Lets the node name itself (the exit-node image's Via header) without knowing its pool.
    vars['NODE_ID'] = node.id;
  }
  // The operator's, not the tenant's: it opens the host's networks to the node's clients. Every
  // kind, as an app pool may run the exit-node image (or gluetun) too.
  delete vars['FIREWALL_OUTBOUND_SUBNETS'];
  if (config.outboundSubnets) vars['FIREWALL_OUTBOUND_SUBNETS'] = config.outboundSubnets;
  if (isHostNetwork(spec)) {
    for (const p of nodePorts(spec)) if (p.env) vars[p.env] = String(hostPortOf(p, node.hostPorts));
    // Sharing the host's network, a node listening on every address would be reachable from
    // outside; the exit-node image and gluetun-style images bind where they are told.
    if (spec.kind === 'exit') vars['BIND_ADDRESS'] = config.publishHost;
  }
  return Object.entries(vars).map(([k, v]) => `${k}=${v}`);
}

/**
 * Named volumes are per node: two nodes of a pool writing one volume would corrupt it. The full
 * pool id makes the name unique on the host: Docker mounts an existing volume of that name
 * as it is, so a name another tenant could also reach would hand it that tenant's data.
 */
export function volumeName(poolId: string, volume: string, ordinal: number): string {
  return `sy-${poolId}-${ordinal}-${volume}`;
}

/**
 * The name volumes had before they carried the pool id. Two tenants whose ids share 8 characters
 * could meet on it, so it is used only for a volume the pool already owns (found by its pool label).
 */
export function legacyVolumeName(tenantId: string, poolName: string, volume: string, ordinal: number): string {
  return `sy-${tenantId.slice(0, 8)}-${poolName}-${ordinal}-${volume}`;
}

/**
 * The tenant's own bridge network: Docker drops traffic between two bridge networks, so
 * tenants cannot reach each other's containers.
 */
export function tenantNetworkName(tenantId: string): string {
  return `sy-net-${tenantId}`;
}

/**
 * The host-side interface of a tenant's network: "syt" and 12 hex digits of its id's hash
 * (Linux allows 15 characters), so an operator's host firewall can match every tenant's
 * bridge with `iifname "syt*"`.
 */
export function tenantBridgeName(tenantId: string): string {
  return `syt${createHash('sha256').update(tenantId).digest('hex').slice(0, 12)}`;
}

export function tenantNetworkSpec(tenantId: string): NetworkCreateOptions {
  return {
    Name: tenantNetworkName(tenantId),
    Driver: 'bridge',
    CheckDuplicate: true,
    Labels: { [Labels.managed]: 'true', [Labels.tenant]: tenantId },
    Options: {
      'com.docker.network.bridge.name': tenantBridgeName(tenantId),
      // No traffic between containers even of one tenant: its nodes reach each other through
      // published ports and the load balancer, where the tenant's ACL policy is enforced.
      'com.docker.network.bridge.enable_icc': 'false',
    },
  };
}

/** The request clamped to the operator's maxima; what is not asked for takes the defaults. */
export function nodeResources(spec: PoolSpec, config: Pick<SpecConfig, 'resources'>): ResourceLimits {
  const { defaults, maxima } = config.resources ?? DEFAULT_RESOURCE_POLICY;
  const asked = spec.resources ?? {};
  return {
    memoryMb: Math.min(asked.memoryMb ?? defaults.memoryMb, maxima.memoryMb),
    cpus: Math.min(asked.cpus ?? defaults.cpus, maxima.cpus),
    pids: Math.min(asked.pids ?? defaults.pids, maxima.pids),
  };
}

/**
 * Capabilities added back after dropping all of them.
 *
 * An exit node is gluetun in production. It sets up routes and its firewall and opens the TUN
 * device (NET_ADMIN, /dev/net/tun); it chowns its OpenVPN files and writes /tmp/gluetun as root
 * over their modes (CHOWN, DAC_OVERRIDE): with NET_ADMIN alone gluetun v3.41 fails at the chown.
 * It binds 53 without NET_BIND_SERVICE: Docker opens every port to every user of a bridge
 * container (ip_unprivileged_port_start=0). On the host's network NET_ADMIN would be the host's
 * firewall and routes, so such a node gets none of it.
 *
 * An app's entrypoint commonly starts as root, prepares its data directory and steps down to its
 * own user (the official postgres, redis and mysql images, through gosu or su-exec): CHOWN,
 * FOWNER and DAC_OVERRIDE for the first, SETUID and SETGID for the second. They act on the
 * container's own files and processes only; NET_RAW (forged packets on the bridge), MKNOD,
 * SYS_CHROOT, SETFCAP, SETPCAP, KILL and the rest of Docker's default set stay dropped.
 */
export function capabilitiesOf(spec: PoolSpec): string[] {
  if (spec.kind === 'exit') return isHostNetwork(spec) ? [] : ['NET_ADMIN', 'CHOWN', 'DAC_OVERRIDE'];
  return ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'SETGID', 'SETUID'];
}

const TUN_DEVICE = '/dev/net/tun';

/** The create options of one node's container. Pure: the same input gives the same spec. */
export function containerSpec(pool: SpecPool, node: SpecNode, config: SpecConfig): ContainerCreateOptions {
  const { spec } = pool;
  const host = isHostNetwork(spec);
  const exposed: Record<string, Record<string, never>> = {};
  const bindings: Record<string, Array<{ HostIp: string; HostPort: string }>> = {};
  if (!host) {
    for (const p of nodePorts(spec)) {
      exposed[portKey(p.containerPort)] = {};
      // Pinned, not left to Docker: a stopped container given HostPort '' gets a new port on
      // every start, and a sleeping node must wake where its clients and the activator expect it.
      const hostPort = node.hostPorts?.[p.name];
      if (!hostPort) throw new Error(`node ${node.id} has no host port chosen for port "${p.name}"`);
      bindings[portKey(p.containerPort)] = [{ HostIp: config.publishHost, HostPort: String(hostPort) }];
    }
  }
  const labels = {
    [Labels.managed]: 'true',
    [Labels.tenant]: pool.tenantId,
    [Labels.pool]: pool.id,
    [Labels.node]: node.id,
    [Labels.kind]: spec.kind,
  };
  const mounts = (spec.volumes ?? []).map((v) => {
    const legacy = legacyVolumeName(pool.tenantId, spec.name, v.name, node.ordinal);
    return {
      Type: 'volume' as const,
      Source: node.legacyVolumes?.has(legacy) ? legacy : volumeName(pool.id, v.name, node.ordinal),
      Target: v.mountPath,
      VolumeOptions: { NoCopy: false, Labels: labels, DriverConfig: { Name: 'local', Options: {} } },
    };
  });
  const limits = nodeResources(spec, config);
  const memory = limits.memoryMb * 1024 * 1024;
  const tun = spec.kind === 'exit' && !host;
  return {
    name: containerName(pool.tenantId, spec.name, node.ordinal),
    // Docker refuses a hostname of its own on the host's network.
    ...(host ? {} : { Hostname: nodeName(spec.name, node.ordinal) }),
    Image: imageOf(spec, config),
    Env: environment(spec, node, config),
    Labels: labels,
    ...(host ? {} : { ExposedPorts: exposed }),
    HostConfig: {
      // Never Docker's default bridge, which every tenant's containers would share.
      NetworkMode: host ? 'host' : tenantNetworkName(pool.tenantId),
      ...(host ? {} : { PortBindings: bindings }),
      ...(mounts.length ? { Mounts: mounts } : {}),
      // A PID 1 that ignores SIGTERM would make every stop wait the whole grace period.
      Init: true,
      // This manager decides when a node runs; Docker restarting it behind our back would not
      // be reflected in the node's status or ports.
      RestartPolicy: { Name: 'no' },
      // A node shares the host with other tenants' nodes: it gets a bounded share of it.
      Memory: memory,
      // Swap equal to the memory: no swap on top, or the limit would not bound the host's memory.
      MemorySwap: memory,
      NanoCpus: Math.round(limits.cpus * 1e9),
      PidsLimit: limits.pids,
      CapDrop: ['ALL'],
      CapAdd: capabilitiesOf(spec),
      // A setuid binary in a tenant's image cannot give its process more than it started with.
      SecurityOpt: ['no-new-privileges'],
      ...(tun ? { Devices: [{ PathOnHost: TUN_DEVICE, PathInContainer: TUN_DEVICE, CgroupPermissions: 'rwm' }] } : {}),
    },
  };
}

export type PortBindings = Record<string, Array<{ HostIp?: string; HostPort?: string }> | null | undefined>;

/**
 * Names the ports Docker published (inspect's NetworkSettings.Ports). Ports without a
 * binding on `publishHost` — a stopped container has none — are left out. A host-network
 * node publishes nothing: its ports are the ones chosen for it.
 */
export function publishedPorts(spec: PoolSpec, bindings: PortBindings | null | undefined, publishHost: string, hostPorts?: Readonly<Record<string, number>>): PublishedPort[] {
  if (isHostNetwork(spec)) {
    return nodePorts(spec).map((p) => ({ name: p.name, containerPort: p.containerPort, hostIp: publishHost, hostPort: hostPortOf(p, hostPorts) }));
  }
  const out: PublishedPort[] = [];
  for (const p of nodePorts(spec)) {
    const binding = (bindings?.[portKey(p.containerPort)] ?? []).find((b) => b.HostIp === publishHost && b.HostPort);
    if (!binding) continue;
    out.push({ name: p.name, containerPort: p.containerPort, hostIp: publishHost, hostPort: Number(binding.HostPort) });
  }
  return out;
}
