import type { ContainerCreateOptions } from 'dockerode';
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
}

export interface SpecConfig {
  /** Image of exit pools whose spec names none. */
  readonly exitNodeImage: string;
  /** The one host address ports are published on. */
  readonly publishHost: string;
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
  if (isHostNetwork(spec)) {
    for (const p of nodePorts(spec)) if (p.env) vars[p.env] = String(hostPortOf(p, node.hostPorts));
    // Sharing the host's network, a node listening on every address would be reachable from
    // outside; the exit-node image and gluetun-style images bind where they are told.
    if (spec.kind === 'exit') vars['BIND_ADDRESS'] = config.publishHost;
  }
  return Object.entries(vars).map(([k, v]) => `${k}=${v}`);
}

/** Named volumes are per node: two nodes of a pool writing one volume would corrupt it. */
export function volumeName(tenantId: string, poolName: string, volume: string, ordinal: number): string {
  return `sy-${tenantId.slice(0, 8)}-${poolName}-${ordinal}-${volume}`;
}

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
  const mounts = (spec.volumes ?? []).map((v) => ({
    Type: 'volume' as const,
    Source: volumeName(pool.tenantId, spec.name, v.name, node.ordinal),
    Target: v.mountPath,
    VolumeOptions: { NoCopy: false, Labels: labels, DriverConfig: { Name: 'local', Options: {} } },
  }));
  return {
    name: containerName(pool.tenantId, spec.name, node.ordinal),
    // Docker refuses a hostname of its own on the host's network.
    ...(host ? {} : { Hostname: nodeName(spec.name, node.ordinal) }),
    Image: imageOf(spec, config),
    Env: environment(spec, node, config),
    Labels: labels,
    ...(host ? {} : { ExposedPorts: exposed }),
    HostConfig: {
      ...(host ? { NetworkMode: 'host' } : { PortBindings: bindings }),
      ...(mounts.length ? { Mounts: mounts } : {}),
      // A PID 1 that ignores SIGTERM would make every stop wait the whole grace period.
      Init: true,
      // This manager decides when a node runs; Docker restarting it behind our back would not
      // be reflected in the node's status or ports.
      RestartPolicy: { Name: 'no' },
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
