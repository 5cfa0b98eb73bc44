import { describe, expect, it } from 'vitest';
import { payloadIssues, schemaIssues } from '@switchyard/contracts';
import { commandFor } from '../src/orders/commands.js';
import { OrderRequest, orderIssues } from '../src/orders/schemas.js';

const tenantId = '0b9f4f2e-6a2d-4c1e-9a51-3f5e8f0c2d11';
const orderId = '5c1d0c53-0d2f-4f0e-8f4a-2b7e1c9a4e77';
const pool = { name: 'tokyo', kind: 'exit' as const, country: 'jp', nodes: { min: 1, max: 2 } };

describe('orderIssues', () => {
  it('asks for the fields a type needs and refuses the ones it does not take', () => {
    expect(orderIssues({ type: 'pool.create', pool })).toEqual([]);
    expect(orderIssues({ type: 'pool.create' })).toEqual([{ path: 'pool', message: 'required for a pool.create order' }]);
    expect(orderIssues({ type: 'pool.delete', pool, poolId: orderId })).toEqual([{ path: 'pool', message: 'not allowed in a pool.delete order' }]);
    expect(orderIssues({ type: 'pool.scale', poolId: orderId }).map((i) => i.path)).toEqual(['nodes']);
  });

  it('takes an optional server for node.add and refuses an unknown country', () => {
    expect(orderIssues({ type: 'node.add', country: 'jp' })).toEqual([]);
    expect(orderIssues({ type: 'node.add', country: 'xx', nodeId: orderId })).toEqual([
      { path: 'nodeId', message: 'not allowed in a node.add order' },
      { path: 'country', message: 'unknown country "xx" (expected an ISO 3166-1 alpha-2 code)' },
    ]);
    expect(orderIssues({ type: 'node.stop', nodeId: orderId, server: 'a.example' })).toEqual([{ path: 'server', message: 'not allowed in a node.stop order' }]);
  });

  it('takes keepVolumes on pool.delete only, and passes it to the manager', () => {
    expect(orderIssues({ type: 'pool.delete', poolId: orderId, keepVolumes: true })).toEqual([]);
    expect(orderIssues({ type: 'pool.create', pool, keepVolumes: true })).toEqual([{ path: 'keepVolumes', message: 'not allowed in a pool.create order' }]);
    const kept = commandFor(orderId, tenantId, { type: 'pool.delete', poolId: orderId, keepVolumes: true }).command;
    expect(kept).toEqual({ subject: 'pool.cmd.delete', payload: { orderId, tenantId, poolId: orderId, keepVolumes: true } });
    expect(payloadIssues(kept.subject, kept.payload)).toEqual([]);
    expect(commandFor(orderId, tenantId, { type: 'pool.delete', poolId: orderId }).command.payload).toEqual({ orderId, tenantId, poolId: orderId });
  });

  it('prefixes pool rule violations with the pool field', () => {
    expect(orderIssues({ type: 'pool.create', pool: { ...pool, country: 'XX' } })[0]?.path).toBe('pool.country');
  });

  it("takes a pool's ACL tags: tag:<name>, unique, at most 16, carried into the command", () => {
    const tagged = { ...pool, tags: ['tag:web', 'tag:prod-1'] };
    expect(schemaIssues(OrderRequest, { type: 'pool.create', pool: tagged })).toEqual([]);
    expect(orderIssues({ type: 'pool.create', pool: tagged })).toEqual([]);
    const { command } = commandFor(orderId, tenantId, { type: 'pool.create', pool: tagged });
    expect((command.payload as { spec: { tags?: string[] } }).spec.tags).toEqual(['tag:web', 'tag:prod-1']);
    expect(payloadIssues(command.subject, command.payload)).toEqual([]);
    for (const tags of [['web'], ['tag:Web'], ['tag:'], ['tag:a b'], [`tag:${'a'.repeat(64)}`]]) {
      expect(
        schemaIssues(OrderRequest, { type: 'pool.create', pool: { ...pool, tags } }).map((i) => i.path),
        JSON.stringify(tags),
      ).toEqual(['pool.tags.0']);
    }
    const seventeen = Array.from({ length: 17 }, (_, i) => `tag:t${i}`);
    expect(schemaIssues(OrderRequest, { type: 'pool.create', pool: { ...pool, tags: seventeen } }).map((i) => i.path)).toEqual(['pool.tags']);
    expect(orderIssues({ type: 'pool.create', pool: { ...pool, tags: ['tag:web', 'tag:web'] } })).toEqual([{ path: 'pool.tags', message: 'tags must be unique' }]);
  });
});

describe('commandFor', () => {
  it('turns every order type into a command that passes the contract', () => {
    const orders: OrderRequest[] = [
      { type: 'pool.create', pool },
      { type: 'pool.scale', poolId: orderId, nodes: { min: 2, max: 3 } },
      { type: 'pool.delete', poolId: orderId },
      { type: 'node.start', nodeId: orderId },
      { type: 'node.stop', nodeId: orderId },
      { type: 'node.restart', nodeId: orderId },
      { type: 'node.add', country: 'jp', server: 'jp1.vpn.example' },
    ];
    for (const order of orders) {
      const { command } = commandFor(orderId, tenantId, order);
      expect(payloadIssues(command.subject, command.payload), order.type).toEqual([]);
    }
  });

  it('upper-cases the country and names the pool it will create', () => {
    const { command, result } = commandFor(orderId, tenantId, { type: 'pool.create', pool });
    expect(command.subject).toBe('pool.cmd.create');
    expect(command.payload).toMatchObject({ orderId, tenantId, spec: { country: 'JP' } });
    expect(result).toEqual({ poolId: (command.payload as { poolId: string }).poolId });
  });
});

describe('node.add', () => {
  it('chooses the node id, upper-cases the country and returns the id as the result', () => {
    const { command, result } = commandFor(orderId, tenantId, { type: 'node.add', country: 'jp' });
    expect(command).toEqual({ subject: 'node.cmd.add', payload: { orderId, tenantId, nodeId: result['nodeId'], country: 'JP' } });
  });
});

describe('the orders of the sleep endpoints', () => {
  const policy = { enabled: true, idleWindowSec: 5, minAwake: 0, probeIntervalMs: 30, probeTimeoutMs: 10_000 };

  it('send the whole policy to the sleep controller, and manual sleeps and wakes to their owners', () => {
    expect(commandFor(orderId, tenantId, { type: 'pool.sleep_policy', poolId: orderId, policy })).toEqual({
      command: { subject: 'sleep.cmd.policy', payload: { orderId, tenantId, poolId: orderId, policy } },
      result: { poolId: orderId },
    });
    expect(commandFor(orderId, tenantId, { type: 'node.sleep', nodeId: orderId }).command).toEqual({
      subject: 'sleep.cmd.node',
      payload: { orderId, tenantId, nodeId: orderId, reason: 'manual' },
    });
    expect(commandFor(orderId, tenantId, { type: 'node.wake', nodeId: orderId }).command).toEqual({
      subject: 'node.cmd.wake',
      payload: { orderId, tenantId, nodeId: orderId, reason: 'manual' },
    });
  });

  it('cannot be placed through POST /v1/orders', () => {
    expect(new Set(schemaIssues(OrderRequest, { type: 'node.wake', nodeId: orderId }).map((i) => i.path))).toEqual(new Set(['type']));
  });
});
