import { OrderFailure } from '@switchyard/service-kit';
import { portsToAllocate } from './container-spec.js';
import type { Serial } from './keyed-serial.js';
import type { Repository } from './ports.js';
import type { Node, Pool } from './tables.js';

export interface HostPortAllocatorDeps {
  readonly repo: Pick<Repository, 'hostPortsInUse' | 'setHostPorts'>;
  readonly serial: Serial;
  /** A free port on the given host address. */
  readonly pickPort: (host: string) => Promise<number>;
  readonly publishHost: string;
}

/** Gives the node a host port for every port it still lacks; returns the node with them. */
export type HostPortAllocator = (pool: Pool, node: Node) => Promise<Node>;

// Retries of the pick when the kernel hands out a port a sleeping node holds.
const PICK_ATTEMPTS = 20;

/**
 * Chooses a node's host ports once; they are reused for every container it gets. A node
 * already published on a port (its container predates pinned ports) keeps that one. A port
 * another live node holds is never chosen, even though nothing listens on it while that node
 * sleeps: it is still that node's, and the activator catches it. One choice at a time, so
 * two nodes cannot be handed the same free port.
 */
export function createHostPortAllocator(deps: HostPortAllocatorDeps): HostPortAllocator {
  const { repo, serial, pickPort, publishHost } = deps;

  async function unheldPort(taken: ReadonlySet<number>): Promise<number> {
    for (let attempt = 0; attempt < PICK_ATTEMPTS; attempt++) {
      const port = await pickPort(publishHost);
      if (!taken.has(port)) return port;
    }
    throw new OrderFailure(`no free port on ${publishHost} that another node does not hold`);
  }

  return async (pool, node) => {
    const missing = portsToAllocate(pool.spec, node.host_ports);
    if (missing.length === 0) return node;
    return serial('host-ports', async () => {
      const taken = await repo.hostPortsInUse();
      const hostPorts = { ...node.host_ports };
      for (const name of missing) {
        const port = node.ports.find((p) => p.name === name)?.hostPort ?? (await unheldPort(taken));
        hostPorts[name] = port;
        taken.add(port);
      }
      await repo.setHostPorts(node.tenant_id, node.id, hostPorts);
      return { ...node, host_ports: hostPorts };
    });
  };
}
