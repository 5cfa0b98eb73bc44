import { createOrderReporter } from '@switchyard/service-kit';
import { createCommandHandlers, type CommandHandlers } from './commands.js';
import { createDeaths, type Deaths } from './deaths.js';
import { DockerOpError } from './docker-ops.js';
import { createDrain } from './drain.js';
import { createHostPortAllocator } from './host-port-allocator.js';
import { keyedSerial } from './keyed-serial.js';
import { createNodeLifecycle } from './node-lifecycle.js';
import type { ManagerDeps } from './ports.js';
import { createReconciler, type Reconciler } from './reconciler.js';
import { createTenantNetworks } from './tenant-networks.js';

/** The manager's core: what its commands, Docker's events and the healer ask of it. */
export interface Manager extends Deaths, Pick<Reconciler, 'reconcileAll'> {
  readonly commands: CommandHandlers;
}

/**
 * Puts the core together around one keyed turn per pool, so commands, heals and
 * reconciliations of one pool never interleave.
 */
export function createManager(deps: ManagerDeps): Manager {
  const serial = keyedSerial();
  // A Docker refusal ends an order like an OrderFailure: asking again will not help.
  const orders = createOrderReporter({
    publish: deps.bus.publish.bind(deps.bus),
    log: deps.log,
    isFailure: (err): err is DockerOpError => err instanceof DockerOpError,
  });
  const withHostPorts = createHostPortAllocator({ repo: deps.repo, serial, pickPort: deps.pickPort, publishHost: deps.config.publishHost });
  const networks = createTenantNetworks(deps);
  const lifecycle = createNodeLifecycle({ ...deps, withHostPorts, networks });
  const drain = createDrain({ bus: deps.bus, pollMs: deps.drainPollMs });
  const deaths = createDeaths({ ...deps, serial, lifecycle });
  const reconciler = createReconciler({ ...deps, serial, lifecycle, drain, nodeDied: deaths.nodeDied });
  return {
    commands: createCommandHandlers({ ...deps, serial, orders, lifecycle, reconciler, drain, networks }),
    ownerOf: deaths.ownerOf,
    nodeDied: deaths.nodeDied,
    heal: deaths.heal,
    reconcileAll: reconciler.reconcileAll,
  };
}
