import { randomUUID } from 'node:crypto';
import type { CommandSubject, Payload } from '@switchyard/contracts';
import type { AnyOrderRequest } from './schemas.js';

export type Command = { [S in CommandSubject]: { subject: S; payload: Payload<S> } }[CommandSubject];

/** The command that carries out an order, and what the order knows of its result up front. */
export function commandFor(orderId: string, tenantId: string, order: AnyOrderRequest): { command: Command; result: Record<string, unknown> } {
  const ids = { orderId, tenantId };
  switch (order.type) {
    case 'pool.create': {
      const poolId = randomUUID();
      const spec = { ...order.pool!, ...(order.pool!.country ? { country: order.pool!.country.toUpperCase() } : {}) };
      return { command: { subject: 'pool.cmd.create', payload: { ...ids, poolId, spec } }, result: { poolId } };
    }
    case 'pool.scale':
      return { command: { subject: 'pool.cmd.scale', payload: { ...ids, poolId: order.poolId!, nodes: order.nodes! } }, result: { poolId: order.poolId } };
    case 'pool.delete':
      return {
        command: { subject: 'pool.cmd.delete', payload: { ...ids, poolId: order.poolId!, ...(order.keepVolumes ? { keepVolumes: true } : {}) } },
        result: { poolId: order.poolId },
      };
    case 'node.start':
    case 'node.stop':
    case 'node.restart': {
      const subject = `node.cmd.${order.type.slice('node.'.length)}` as 'node.cmd.start' | 'node.cmd.stop' | 'node.cmd.restart';
      return { command: { subject, payload: { ...ids, nodeId: order.nodeId! } }, result: { nodeId: order.nodeId } };
    }
    case 'node.add': {
      const nodeId = randomUUID();
      const payload = { ...ids, nodeId, country: order.country!.toUpperCase(), ...(order.server ? { server: order.server } : {}) };
      return { command: { subject: 'node.cmd.add', payload }, result: { nodeId } };
    }
    case 'pool.sleep_policy':
      return { command: { subject: 'sleep.cmd.policy', payload: { ...ids, poolId: order.poolId, policy: order.policy } }, result: { poolId: order.poolId } };
    // "manual": the sleep controller's own sleeps say "idle: ...", the activator's wakes "connection".
    case 'node.sleep':
      return { command: { subject: 'sleep.cmd.node', payload: { ...ids, nodeId: order.nodeId, reason: 'manual' } }, result: { nodeId: order.nodeId } };
    case 'node.wake':
      return { command: { subject: 'node.cmd.wake', payload: { ...ids, nodeId: order.nodeId, reason: 'manual' } }, result: { nodeId: order.nodeId } };
    // The tunnel's id is chosen here, like a new node's, so the client learns it from the order.
    case 'tunnel.open': {
      const tunnelId = randomUUID();
      return { command: { subject: 'tunnel.cmd.open', payload: { ...ids, tunnelId, spec: order.spec } }, result: { tunnelId } };
    }
    case 'tunnel.close':
      return { command: { subject: 'tunnel.cmd.close', payload: { ...ids, tunnelId: order.tunnelId } }, result: { tunnelId: order.tunnelId } };
    case 'tunnel.rotate':
      return { command: { subject: 'tunnel.cmd.rotate', payload: { ...ids, tunnelId: order.tunnelId } }, result: { tunnelId: order.tunnelId } };
  }
}
