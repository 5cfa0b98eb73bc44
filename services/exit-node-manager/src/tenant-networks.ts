import { Labels } from '@switchyard/docker';
import { tenantNetworkName, tenantNetworkSpec } from './container-spec.js';
import { keyedSerial } from './keyed-serial.js';
import type { ManagerDeps } from './ports.js';

/** Each tenant's bridge network (see `tenantNetworkSpec`), there while the tenant has containers. */
export interface TenantNetworks {
  /**
   * Runs `fn` (a container create) with the tenant's network present. A `release` waits for
   * it, and then finds the container it made, so a network is never removed under a new node.
   */
  using<T>(tenantId: string, fn: () => Promise<T>): Promise<T>;
  /** Removes the tenant's network once it has no live pool and Docker no container of it. */
  release(tenantId: string): Promise<void>;
}

export function createTenantNetworks(deps: Pick<ManagerDeps, 'repo' | 'docker' | 'log'>): TenantNetworks {
  const { repo, docker, log } = deps;
  const serial = keyedSerial();
  return {
    using(tenantId, fn) {
      return serial(tenantId, async () => {
        await docker.ensureNetwork(tenantNetworkSpec(tenantId));
        return fn();
      });
    },
    release(tenantId) {
      return serial(tenantId, async () => {
        if ((await repo.listPools(tenantId)).length > 0) return;
        if ((await docker.findContainers({ [Labels.tenant]: tenantId })).length > 0) return;
        await docker.removeNetwork(tenantNetworkName(tenantId));
        log.info({ tenantId }, 'removed the network of a tenant without pools');
      });
    },
  };
}
