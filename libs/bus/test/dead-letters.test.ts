import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { orderFailureOf } from '../src/dead-letters.js';

const bytes = (v: unknown) => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));

describe('the order a dead letter fails', () => {
  const orderId = randomUUID();
  const tenantId = randomUUID();

  it('fails the order of a command rejected for another field, with the reason', () => {
    const data = bytes({ orderId, tenantId, poolId: randomUUID(), spec: { nodes: { min: 'many' } } });
    expect(orderFailureOf('pool.cmd.create', data, 'invalid pool.cmd.create payload: spec.nodes.min: must be integer')).toEqual({
      orderId,
      tenantId,
      reason: 'not carried out: invalid pool.cmd.create payload: spec.nodes.min: must be integer',
    });
  });

  it('fails nothing without a well-formed order and tenant, or for a payload that is not JSON', () => {
    expect(orderFailureOf('pool.cmd.create', bytes({ tenantId, poolId: randomUUID() }), 'gave up')).toBeUndefined();
    expect(orderFailureOf('pool.cmd.create', bytes({ orderId: 'not-a-uuid', tenantId }), 'gave up')).toBeUndefined();
    expect(orderFailureOf('pool.cmd.create', bytes({ orderId, tenantId: 42 }), 'gave up')).toBeUndefined();
    expect(orderFailureOf('pool.cmd.create', bytes('{"orderId": "not json'), 'invalid JSON')).toBeUndefined();
    expect(orderFailureOf('pool.cmd.create', bytes([orderId]), 'invalid')).toBeUndefined();
  });

  it('never turns an event into an order failure, nor an unknown subject', () => {
    expect(orderFailureOf('order.evt.fulfilled', bytes({ orderId, tenantId, result: {} }), 'rejected')).toBeUndefined();
    expect(orderFailureOf('pool.cmd.nonsense', bytes({ orderId, tenantId }), 'no handler')).toBeUndefined();
  });

  it('bounds the reason', () => {
    expect(orderFailureOf('node.cmd.start', bytes({ orderId, tenantId }), 'x'.repeat(5000))!.reason.length).toBe(1024);
  });
});
