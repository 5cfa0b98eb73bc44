import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { Svcm } from '@nats-io/services';
import { context, trace } from '@opentelemetry/api';
import { createBus, Rejection, type Bus } from '@switchyard/bus';
import { ContractError, HEADERS } from '@switchyard/contracts';
import { InMemorySpanExporter, startTelemetry, type Telemetry } from '@switchyard/telemetry';
import { eventually, startNatsServer, type NatsServer } from '@switchyard/testkit';
import { aNodeView } from '@switchyard/testkit/fixtures';

// The bus against a real JetStream server: validation, de-duplication, retries, dead letters
// and trace context in headers.
describe('bus', () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let gateway: Bus;
  let manager: Bus;
  let telemetry: Telemetry;
  const spans = new InMemorySpanExporter();
  const tenantId = randomUUID();

  beforeAll(async () => {
    telemetry = startTelemetry({ serviceName: 'bus-test', exporter: spans });
    nats = await startNatsServer();
    nc = await nats.connect();
    gateway = createBus(nc, 'api-gateway');
    manager = createBus(nc, 'exit-node-manager');
    await gateway.ensureTopology();
    await manager.ensureTopology();
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
    await telemetry?.shutdown();
  });

  it('refuses to send a payload that breaks the contract', async () => {
    await expect(gateway.publish('order.evt.failed', { orderId: 'x', tenantId, reason: '' } as never)).rejects.toThrow(ContractError);
  });

  it('delivers once per msgId, retries a failing handler, and dead-letters a rejected message', async () => {
    const seen: string[] = [];
    let failuresLeft = 2;
    const consumption = gateway.consume(
      'apiGatewayOrders',
      {
        'order.evt.progress': async (e) => {
          seen.push(`progress:${e.message}`);
        },
        'order.evt.fulfilled': async (e, delivery) => {
          if (failuresLeft-- > 0) throw new Error('database busy');
          seen.push(`fulfilled:${delivery.deliveryCount}:${e.orderId}`);
        },
        'order.evt.failed': async () => {
          throw new Rejection('order belongs to nobody');
        },
      },
      { retryDelayMs: () => 50 },
    );

    const orderId = randomUUID();
    await gateway.publish('order.evt.progress', { orderId, tenantId, message: 'once' }, { msgId: 'progress-1' });
    await gateway.publish('order.evt.progress', { orderId, tenantId, message: 'once' }, { msgId: 'progress-1' });
    await gateway.publish('order.evt.fulfilled', { orderId, tenantId, result: {} });
    await gateway.publish('order.evt.failed', { orderId, tenantId, reason: 'no capacity' });

    await eventually(
      () => seen.length,
      (n) => n >= 2,
      10_000,
      'two handled',
      { intervalMs: 50, returnLast: true },
    );
    // Time for a duplicate or the failed event to be handled after all: the check below says none was.
    await sleep(300);
    await consumption.stop();
    expect(seen).toEqual(['progress:once', `fulfilled:3:${orderId}`]);

    const jsm = await jetstreamManager(nc);
    const dead = await jsm.streams.getMessage('DLQ', { last_by_subj: 'dlq.order.evt.failed' });
    expect(dead?.header.get(HEADERS.deadLetterReason)).toBe('order belongs to nobody');
    expect(dead?.header.get(HEADERS.deadLetterService)).toBe('api-gateway');
    expect(dead?.json()).toMatchObject({ orderId, reason: 'no capacity' });
  });

  it('answers requests through a NATS micro service endpoint and never sends an invalid reply', async () => {
    const service = await new Svcm(nc).add({ name: 'exit-node-manager', version: '0.0.0' });
    const brokenTenant = randomUUID();
    const node = aNodeView({ tenantId, name: 'tokyo-1', country: 'JP', containerId: 'c0ffee', startedAt: new Date().toISOString() });
    manager.serve(service, 'node.req.list', async (q) => {
      if (q.tenantId === brokenTenant) return { nodes: [{ ...node, status: 'exploded' }] } as never;
      return { nodes: q.tenantId === tenantId ? [node] : [] };
    });
    await expect(gateway.request('node.req.list', { tenantId })).resolves.toEqual({ nodes: [node] });
    await expect(gateway.request('node.req.list', { tenantId: randomUUID() })).resolves.toEqual({ nodes: [] });
    await expect(gateway.request('node.req.list', { tenantId: brokenTenant })).rejects.toThrow('internal error');
    // A request that breaks the contract is answered 400 by the responder, not hung.
    const raw = await nc.request('node.req.list', JSON.stringify({ tenantId: 'nope' }), { timeout: 2000 });
    expect(raw.headers?.get('Nats-Service-Error-Code')).toBe('400');
    await service.stop();
  });

  it('carries the trace context from publisher to consumer in lowercase headers', async () => {
    const received: string[] = [];
    const consumption = gateway.consume('apiGatewayOrders', {
      'order.evt.progress': async () => {
        received.push(trace.getActiveSpan()?.spanContext().traceId ?? 'none');
      },
      'order.evt.fulfilled': async () => undefined,
      'order.evt.failed': async () => undefined,
    });
    const tracer = trace.getTracer('bus-test');
    const root = tracer.startSpan('root');
    await context.with(trace.setSpan(context.active(), root), () => gateway.publish('order.evt.progress', { orderId: randomUUID(), tenantId, message: 'traced' }));
    root.end();
    await eventually(
      () => received.length,
      (n) => n >= 1,
      10_000,
      'the traced event handled',
      { intervalMs: 50, returnLast: true },
    );
    await consumption.stop();
    expect(received).toEqual([root.spanContext().traceId]);

    const finished = spans.getFinishedSpans().filter((s) => s.spanContext().traceId === root.spanContext().traceId);
    const publish = finished.find((s) => s.name === 'order.evt.progress publish')!;
    const processSpan = finished.find((s) => s.name === 'order.evt.progress process')!;
    expect(publish.parentSpanContext?.spanId).toBe(root.spanContext().spanId);
    expect(processSpan.parentSpanContext?.spanId).toBe(publish.spanContext().spanId);
  });

  it('logs a throwing event handler with its subject and stack, counts it, and keeps listening', async () => {
    const logged: Array<{ obj: { err: unknown; subject: string }; msg: string }> = [];
    const log = { warn: () => undefined, error: (obj: { err: unknown; subject: string }, msg: string) => logged.push({ obj, msg }) };
    const listener = createBus(nc, 'health-monitor', { log });
    const handled: string[] = [];
    const subscription = listener.subscribe('pool.evt.deleted', async function rebuildAfterDelete(e) {
      if (e.poolId === poisonPool) throw new Error('routing table is inconsistent');
      handled.push(e.poolId);
    });
    const poisonPool = randomUUID();
    const goodPool = randomUUID();
    await nc.flush();
    try {
      await gateway.publish('pool.evt.deleted', { tenantId, poolId: poisonPool, at: new Date().toISOString() });
      await gateway.publish('pool.evt.deleted', { tenantId, poolId: goodPool, at: new Date().toISOString() });
      await vi.waitFor(() => expect(handled).toEqual([goodPool]), { timeout: 5000, interval: 20 });
      expect(logged).toHaveLength(1);
      expect(logged[0]!.obj.subject).toBe('pool.evt.deleted');
      const err = logged[0]!.obj.err as Error;
      expect(err.message).toBe('routing table is inconsistent');
      expect(err.stack).toContain('rebuildAfterDelete');
      expect(listener.handlerErrors()).toEqual({ 'pool.evt.deleted': 1 });
    } finally {
      await subscription.stop();
    }
  });
});
