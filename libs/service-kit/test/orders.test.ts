import { describe, expect, it } from 'vitest';
import { Rejection } from '@switchyard/bus';
import { createOrderReporter, OrderFailure } from '../src/orders.js';

class DockerRefused extends Error {}

function reporter() {
  const published: Array<{ subject: string; payload: unknown; msgId: string | undefined }> = [];
  const warnings: string[] = [];
  const orders = createOrderReporter({
    publish: (async (subject: string, payload: unknown, opts?: { msgId?: string }) => {
      published.push({ subject, payload, msgId: opts?.msgId });
    }) as never,
    log: { warn: ((_obj: unknown, msg: string) => warnings.push(msg)) as never },
    isFailure: (err): err is Error => err instanceof DockerRefused,
  });
  return { orders, published, warnings };
}

describe('order reporting', () => {
  it('fails the order with the reason and settles the command on an OrderFailure', async () => {
    const { orders, published } = reporter();
    await orders.run({ orderId: 'o1', tenantId: 't1' }, 'pool.cmd.create', async () => {
      throw new OrderFailure('a pool named "tokyo" already exists');
    });
    expect(published).toEqual([
      { subject: 'order.evt.failed', payload: { orderId: 'o1', tenantId: 't1', reason: 'a pool named "tokyo" already exists' }, msgId: 'order.evt.failed:o1' },
    ]);
  });

  it('treats what isFailure accepts as an order failure too', async () => {
    const { orders, published } = reporter();
    await orders.run({ orderId: 'o2', tenantId: 't1' }, 'node.cmd.start', async () => {
      throw new DockerRefused('no such image');
    });
    expect(published.map((p) => p.subject)).toEqual(['order.evt.failed']);
  });

  it('dead-letters a failure without an order: the bus takes a Rejection', async () => {
    const { orders, published } = reporter();
    const run = orders.run({ tenantId: 't1' }, 'node.cmd.sleep', async () => {
      throw new OrderFailure('node n1 is stopped; only a running node can be put to sleep');
    });
    await expect(run).rejects.toBeInstanceOf(Rejection);
    await expect(run).rejects.toThrow('only a running node can be put to sleep');
    expect(published).toEqual([]);
  });

  it('rethrows anything else so the bus redelivers (and logs it, once)', async () => {
    const { orders, published, warnings } = reporter();
    const down = new Error('connect ECONNREFUSED 127.0.0.1:5432');
    await expect(orders.run({ orderId: 'o3', tenantId: 't1' }, 'pool.cmd.scale', async () => Promise.reject(down))).rejects.toBe(down);
    expect(published).toEqual([]);
    expect(warnings).toEqual([]);
  });

  it('reports progress and fulfilment of an order, and nothing without one', async () => {
    const { orders, published } = reporter();
    await orders.progress({ orderId: 'o4', tenantId: 't1' }, 'starting 2 containers');
    await orders.fulfil({ orderId: 'o4', tenantId: 't1' }, { poolId: 'p1', nodeIds: ['n1'] });
    await orders.progress({ tenantId: 't1' }, 'ignored');
    await orders.fulfil({ tenantId: 't1' }, { poolId: 'p1' });
    expect(published).toEqual([
      { subject: 'order.evt.progress', payload: { orderId: 'o4', tenantId: 't1', message: 'starting 2 containers' }, msgId: 'order.evt.progress:o4' },
      { subject: 'order.evt.fulfilled', payload: { orderId: 'o4', tenantId: 't1', result: { poolId: 'p1', nodeIds: ['n1'] } }, msgId: 'order.evt.fulfilled:o4' },
    ]);
  });
});

describe('progress of long work', () => {
  it('gives each step a de-duplication id of its own, so every step reaches the order', async () => {
    const { orders, published } = reporter();
    await orders.progress({ orderId: 'o5', tenantId: 't1' }, 'draining: minute 1', { step: 'drain:1' });
    await orders.progress({ orderId: 'o5', tenantId: 't1' }, 'draining: minute 2', { step: 'drain:2' });
    expect(published.map((p) => p.msgId)).toEqual(['order.evt.progress:o5:drain:1', 'order.evt.progress:o5:drain:2']);
  });
});
