import type { Attributes } from '@opentelemetry/api';
import type { NodeStatus, PublishedPort } from '@switchyard/contracts';
import { Labels } from '@switchyard/docker';
import { OrderFailure } from '@switchyard/service-kit';
import { containerSpec, publishedPorts, tenantNetworkName } from './container-spec.js';
import { DockerOpError, type ContainerRef } from './docker-ops.js';
import type { HostPortAllocator } from './host-port-allocator.js';
import type { ManagerDeps } from './ports.js';
import type { Node, Pool } from './tables.js';
import type { TenantNetworks } from './tenant-networks.js';

/** Checks the pool's image once per operation, however many containers it creates. */
export type EnsureImage = () => Promise<void>;

/** One node's container made to run, stop or go, each step told on the bus and recorded. */
export interface NodeLifecycle {
  /**
   * Makes the node's container exist and run, and records what Docker reports. Safe to repeat:
   * a container made by a crashed earlier attempt is found by its node label and reused, and
   * events use ids derived from Docker's own facts, so a repeat is dropped by JetStream.
   */
  ensureRunning(pool: Pool, node: Node, ensureImage: EnsureImage): Promise<void>;
  stopNode(node: Node, status: 'stopped' | 'sleeping', reason: string): Promise<void>;
  removeNode(node: Node, reason: string): Promise<void>;
  /** Records the status where other services read hot state. */
  setHot(node: Node, status: NodeStatus): Promise<void>;
}

export type LifecycleDeps = Pick<ManagerDeps, 'repo' | 'docker' | 'bus' | 'hotState' | 'stats' | 'log' | 'config'> & {
  readonly withHostPorts: HostPortAllocator;
  readonly networks: Pick<TenantNetworks, 'using'>;
};

export function nodeAttributes(node: Node): Attributes {
  return { 'switchyard.tenant.id': node.tenant_id, 'switchyard.pool.id': node.pool_id, 'switchyard.node.id': node.id };
}

const now = () => new Date().toISOString();

// Field by field: jsonb hands objects back with their keys reordered.
const samePorts = (a: readonly PublishedPort[], b: readonly PublishedPort[]) =>
  a.length === b.length &&
  a.every((p, i) => {
    const q = b[i]!;
    return p.name === q.name && p.containerPort === q.containerPort && p.hostIp === q.hostIp && p.hostPort === q.hostPort;
  });

export function createNodeLifecycle(deps: LifecycleDeps): NodeLifecycle {
  const { repo, docker, bus, log, config, withHostPorts, networks } = deps;

  async function setHot(node: Node, status: NodeStatus) {
    await deps.hotState({ tenantId: node.tenant_id, poolId: node.pool_id, nodeId: node.id, status });
  }

  /** Marks the node failed, so the failure is visible on the node and not only on the order. */
  async function guardNode<T>(node: Node, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof DockerOpError)) throw err;
      await repo.updateNode(node.tenant_id, node.id, { status: 'error' });
      await setHot(node, 'error');
      throw new OrderFailure(`node ${node.name}: ${err.message}`, { cause: err });
    }
  }

  /** The node's one container; extra ones (left by an older bug or a manual `docker run`) go. */
  async function nodeContainer(node: Node): Promise<ContainerRef | undefined> {
    const found = await docker.findContainers({ [Labels.tenant]: node.tenant_id, [Labels.node]: node.id });
    if (found.length <= 1) return found[0];
    const keep = found.find((c) => c.id === node.container_id) ?? found.find((c) => c.running) ?? found[0]!;
    for (const c of found) if (c !== keep) await docker.remove(c.id, nodeAttributes(node));
    return keep;
  }

  async function createContainer(pool: Pool, node: Node, ensureImage: EnsureImage): Promise<ContainerRef> {
    await ensureImage();
    const legacyVolumes = pool.spec.volumes?.length ? new Set(await docker.findVolumes({ [Labels.tenant]: pool.tenant_id, [Labels.pool]: pool.id })) : undefined;
    const options = containerSpec(
      { tenantId: pool.tenant_id, id: pool.id, spec: pool.spec },
      { id: node.id, ordinal: node.ordinal, server: node.server, hostPorts: node.host_ports, ...(legacyVolumes ? { legacyVolumes } : {}) },
      config,
    );
    const create = () => docker.create(options, nodeAttributes(node));
    try {
      const id = pool.spec.network === 'host' ? await create() : await networks.using(pool.tenant_id, create);
      return { id, running: false, labels: options.Labels ?? {} };
    } catch (err) {
      if (!(err instanceof DockerOpError && err.conflict)) throw err;
      // The name is taken: by this node's own container if a create raced ours, else by a
      // container this manager does not own, which only a person should remove.
      const mine = await nodeContainer(node);
      if (mine) return mine;
      throw new DockerOpError('container.create', `the container name "${options.name}" is taken by a container that is not node ${node.name}'s; remove it (docker rm) and retry`, {
        cause: err,
      });
    }
  }

  /**
   * A container made before tenant networks shares Docker's default bridge with every tenant
   * and has no limits. It is kept, not made anew behind the tenant's back: that would lose what
   * it wrote outside its volumes.
   */
  function warnIfOutdated(pool: Pool, node: Node, container: ContainerRef) {
    const expected = pool.spec.network === 'host' ? 'host' : tenantNetworkName(pool.tenant_id);
    if (!container.networkMode || container.networkMode === expected) return;
    log.warn(
      { nodeId: node.id, containerId: container.id, networkMode: container.networkMode },
      `the container of node ${node.name} predates tenant networks and limits (it is on "${container.networkMode}"); scale its pool down and up to make it anew`,
    );
  }

  async function ensureRunning(pool: Pool, given: Node, ensureImage: EnsureImage): Promise<void> {
    await guardNode(given, async () => {
      const node = await withHostPorts(pool, given);
      const attrs = nodeAttributes(node);
      const found = await nodeContainer(node);
      if (found) warnIfOutdated(pool, node, found);
      const container = found ?? (await createContainer(pool, node, ensureImage));
      if (node.container_id !== container.id) {
        // Published before the row is written: a crash in between repeats the event (deduplicated),
        // where the other order would lose it.
        await bus.publish(
          'node.evt.created',
          {
            tenantId: node.tenant_id,
            poolId: node.pool_id,
            nodeId: node.id,
            at: now(),
            name: node.name,
            containerId: container.id,
            kind: pool.spec.kind,
            ...(pool.spec.country ? { country: pool.spec.country.toUpperCase() } : {}),
            ...(pool.spec.healthCheck ? { healthCheck: pool.spec.healthCheck } : {}),
          },
          { msgId: `node.evt.created:${container.id}` },
        );
        await repo.updateNode(node.tenant_id, node.id, { containerId: container.id, status: 'starting' });
        log.info({ nodeId: node.id, containerId: container.id }, `container of node ${node.name} created`);
      }
      // The list can lag behind a container that just died (Docker updates it after tearing
      // down the network), so "running" is believed only once inspect agrees.
      const inspected = container.running ? await docker.inspect(container.id, attrs) : undefined;
      const { state, startMs } = inspected?.running ? { state: inspected, startMs: 0 } : await docker.start(container.id, attrs);
      const ports = publishedPorts(pool.spec, state.ports, config.publishHost, node.host_ports);
      const unchanged =
        node.status === 'running' && node.container_id === container.id && node.started_at?.getTime() === state.startedAt?.getTime() && samePorts(node.ports, ports);
      if (unchanged) return;
      await bus.publish(
        'node.evt.started',
        {
          tenantId: node.tenant_id,
          poolId: node.pool_id,
          nodeId: node.id,
          at: now(),
          containerId: container.id,
          ports,
          startMs,
          ...(state.healthcheck ? { healthcheck: true } : {}),
        },
        { msgId: `node.evt.started:${container.id}:${state.startedAt?.toISOString() ?? 'unknown'}` },
      );
      await repo.updateNode(node.tenant_id, node.id, {
        status: 'running',
        containerId: container.id,
        ports,
        startedAt: state.startedAt,
      });
      await setHot(node, 'running');
      log.info({ nodeId: node.id, containerId: container.id, ports, startMs }, `node ${node.name} running`);
    });
  }

  async function stopNode(node: Node, status: 'stopped' | 'sleeping', reason: string): Promise<void> {
    await guardNode(node, async () => {
      const attrs = nodeAttributes(node);
      const container = await nodeContainer(node);
      if (container?.running) await docker.stop(container.id, attrs);
      if (node.status === status && !container?.running) return;
      const containerId = container?.id ?? node.container_id ?? '';
      const finishedAt = container ? (await docker.inspect(container.id, attrs)).finishedAt : null;
      await bus.publish(
        'node.evt.stopped',
        { tenantId: node.tenant_id, poolId: node.pool_id, nodeId: node.id, at: now(), containerId, reason },
        { msgId: `node.evt.stopped:${containerId}:${finishedAt?.toISOString() ?? node.id}` },
      );
      // A stopped node is reached nowhere. A sleeping one keeps its ports in view: they are
      // pinned, so it wakes on them, and the activator catches them meanwhile.
      await repo.updateNode(node.tenant_id, node.id, { status, ...(status === 'stopped' ? { ports: [] } : {}) });
      await setHot(node, status);
      log.info({ nodeId: node.id, containerId, reason }, `node ${node.name} ${status}`);
    });
  }

  async function removeNode(node: Node, reason: string): Promise<void> {
    await guardNode(node, async () => {
      const attrs = nodeAttributes(node);
      const found = await docker.findContainers({ [Labels.tenant]: node.tenant_id, [Labels.node]: node.id });
      for (const c of found) {
        // Stop first so the process gets its grace period; remove alone would SIGKILL it.
        if (c.running) await docker.stop(c.id, attrs);
        await docker.remove(c.id, attrs);
      }
      await bus.publish('node.evt.removed', { tenantId: node.tenant_id, poolId: node.pool_id, nodeId: node.id, at: now(), reason }, { msgId: `node.evt.removed:${node.id}` });
      await repo.updateNode(node.tenant_id, node.id, { status: 'removed', ports: [] });
      await setHot(node, 'removed');
      await deps.stats.forget(node.id);
      log.info({ nodeId: node.id, reason }, `node ${node.name} removed`);
    });
  }

  return { ensureRunning, stopNode, removeNode, setHot };
}
