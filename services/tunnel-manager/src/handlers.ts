import type { ConsumerHandlers } from '@switchyard/bus';
import { createOrderReporter, type EventHandlers, type OrderReporterDeps } from '@switchyard/service-kit';
import type { TunnelManager } from './manager.js';

/** CONSUMERS.tunnelManagerCommands, each carried out as an order; and the node events tunnels follow. */
export function createHandlers(manager: TunnelManager, deps: Pick<OrderReporterDeps, 'publish' | 'log'>) {
  const orders = createOrderReporter(deps);
  const commands: ConsumerHandlers<'tunnelManagerCommands'> = {
    'tunnel.cmd.open': (p) =>
      orders.run(p, 'tunnel.cmd.open', async () => {
        const { endpoint } = await manager.open(p);
        await orders.progress(p, `tunnel ${p.spec.name} open at ${endpoint.host}:${endpoint.port}`);
        await orders.fulfil(p, { tunnelId: p.tunnelId });
      }),
    'tunnel.cmd.close': (p) =>
      orders.run(p, 'tunnel.cmd.close', async () => {
        await manager.close(p);
        await orders.fulfil(p, { tunnelId: p.tunnelId });
      }),
    'tunnel.cmd.rotate': (p) =>
      orders.run(p, 'tunnel.cmd.rotate', async () => {
        await manager.rotate(p);
        await orders.fulfil(p, { tunnelId: p.tunnelId });
      }),
  };
  const events: EventHandlers = {
    'node.evt.started': (p) => manager.nodeStarted(p),
    'node.evt.removed': (p) => manager.nodeRemoved(p),
  };
  return { commands, events };
}
