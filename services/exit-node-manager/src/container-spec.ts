import type { ContainerCreateOptions } from 'dockerode';
import { Labels } from '@switchyard/docker';
import type { PoolSpec, PublishedPort } from '@switchyard/contracts';

export interface SpecPool {
  readonly tenantId: string;
  readonly id: string;
  readonly spec: PoolSpec;
}

export interface SpecNode {
  readonly id: string;
  readonly ordinal: number;
}

export interface SpecConfig {
  /** Image of exit pools whose spec names none. */
  readonly exitNodeImage: string;
  /** The one host address ports are published on. */
  readonly publishHost: string;
}

export interface NodePort {
  readonly name: string;
  readonly containerPort: number;
}

/** What every exit node serves: the HTTP proxy and the control API. */
export const EXIT_NODE_PORTS: readonly NodePort[] = Object.freeze([
  { name: 'proxy', containerPort: 8888 },
  { name: 'control', containerPort: 8000 },
]);

export function nodePorts(spec: PoolSpec): NodePort[] {
  if (spec.kind === 'exit') return [...EXIT_NODE_PORTS];
  return (spec.ports ?? []).map((p) => ({ name: p.name, containerPort: p.containerPort }));
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

function environment(spec: PoolSpec): string[] {
  const vars: Record<string, string> = { ...spec.env };
  // The pool's country is authoritative: an env entry cannot send an exit node elsewhere.
  if (spec.kind === 'exit' && spec.country) vars['SERVER_COUNTRIES'] = spec.country.toUpperCase();
  return Object.entries(vars).map(([k, v]) => `${k}=${v}`);
}

/** The create options of one node's container. Pure: the same input gives the same spec. */
export function containerSpec(pool: SpecPool, node: SpecNode, config: SpecConfig): ContainerCreateOptions {
  const { spec } = pool;
  const ports = nodePorts(spec);
  const exposed: Record<string, {}> = {};
  const bindings: Record<string, Array<{ HostIp: string; HostPort: string }>> = {};
  for (const p of ports) {
    exposed[portKey(p.containerPort)] = {};
    // HostPort '' lets Docker choose a free port; the chosen one is read back by inspect.
    bindings[portKey(p.containerPort)] = [{ HostIp: config.publishHost, HostPort: '' }];
  }
  return {
    name: containerName(pool.tenantId, spec.name, node.ordinal),
    Hostname: nodeName(spec.name, node.ordinal),
    Image: imageOf(spec, config),
    Env: environment(spec),
    Labels: {
      [Labels.managed]: 'true',
      [Labels.tenant]: pool.tenantId,
      [Labels.pool]: pool.id,
      [Labels.node]: node.id,
      [Labels.kind]: spec.kind,
    },
    ExposedPorts: exposed,
    HostConfig: {
      PortBindings: bindings,
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
 * binding on `publishHost` — a stopped container has none — are left out.
 */
export function publishedPorts(spec: PoolSpec, bindings: PortBindings | null | undefined, publishHost: string): PublishedPort[] {
  const out: PublishedPort[] = [];
  for (const p of nodePorts(spec)) {
    const binding = (bindings?.[portKey(p.containerPort)] ?? []).find((b) => b.HostIp === publishHost && b.HostPort);
    if (!binding) continue;
    out.push({ name: p.name, containerPort: p.containerPort, hostIp: publishHost, hostPort: Number(binding.HostPort) });
  }
  return out;
}
