import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually } from '@switchyard/testkit/async';
import { InMemorySpanExporter, startTelemetry, withSpan, type ReadableSpan, type Telemetry } from '../src/index.js';

let telemetry: Telemetry | undefined;

afterEach(async () => {
  await telemetry?.shutdown();
  telemetry = undefined;
});

function byName(spans: ReadableSpan[], name: string): ReadableSpan {
  const span = spans.find((s) => s.name === name);
  if (!span) throw new Error(`no span named ${name} in [${spans.map((s) => s.name).join(', ')}]`);
  return span;
}

describe('startTelemetry with an in-memory exporter', () => {
  it('exports nested withSpan spans with the right parent, across awaits', async () => {
    const exporter = new InMemorySpanExporter();
    telemetry = startTelemetry({ serviceName: 'test-svc', exporter });

    const result = await withSpan('parent', { kind: SpanKind.SERVER, attributes: { 'tenant.id': 't1' } }, async () => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      return withSpan('child', {}, async () => {
        await Promise.resolve();
        return 42;
      });
    });
    expect(result).toBe(42);

    const spans = exporter.getFinishedSpans();
    const parent = byName(spans, 'parent');
    const child = byName(spans, 'child');
    expect(child.spanContext().traceId).toBe(parent.spanContext().traceId);
    expect(child.parentSpanContext?.spanId).toBe(parent.spanContext().spanId);
    expect(parent.parentSpanContext).toBeUndefined();
    expect(parent.kind).toBe(SpanKind.SERVER);
    expect(parent.attributes['tenant.id']).toBe('t1');
    expect(parent.resource.attributes['service.name']).toBe('test-svc');
    expect(parent.status.code).toBe(SpanStatusCode.UNSET);
  });

  it('records a failure on the span and rethrows the same error', async () => {
    const exporter = new InMemorySpanExporter();
    telemetry = startTelemetry({ serviceName: 'test-svc', exporter });
    const boom = new Error('boom');

    await expect(
      withSpan('failing', {}, async () => {
        throw boom;
      }),
    ).rejects.toBe(boom);

    const span = byName(exporter.getFinishedSpans(), 'failing');
    expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: 'boom' });
    expect(span.events.map((e) => e.name)).toEqual(['exception']);
    expect(span.events[0]?.attributes?.['exception.message']).toBe('boom');
    expect(span.ended).toBe(true);
  });

  it('round-trips a traceparent through a plain object carrier', async () => {
    const exporter = new InMemorySpanExporter();
    telemetry = startTelemetry({ serviceName: 'test-svc', exporter });

    const carrier: Record<string, string> = {};
    const sent = await withSpan('publish', { kind: SpanKind.PRODUCER }, async (span) => {
      propagation.inject(context.active(), carrier);
      return span.spanContext();
    });
    expect(carrier['traceparent']).toBe(`00-${sent.traceId}-${sent.spanId}-01`);

    const extracted = propagation.extract(ROOT_CONTEXT, carrier);
    const remote = trace.getSpanContext(extracted);
    expect(remote).toMatchObject({ traceId: sent.traceId, spanId: sent.spanId, isRemote: true });

    await context.with(extracted, () => withSpan('consume', { kind: SpanKind.CONSUMER }, async () => undefined));
    const consume = byName(exporter.getFinishedSpans(), 'consume');
    expect(consume.spanContext().traceId).toBe(sent.traceId);
    expect(consume.parentSpanContext?.spanId).toBe(sent.spanId);
  });

  it('can be started twice; the second exporter takes over', async () => {
    const first = new InMemorySpanExporter();
    const firstTelemetry = startTelemetry({ serviceName: 'one', exporter: first });
    await withSpan('before', {}, async () => undefined);
    // Shutting an InMemorySpanExporter down empties it, and replacing shuts the first one down.
    expect(first.getFinishedSpans().map((s) => s.name)).toEqual(['before']);

    const second = new InMemorySpanExporter();
    telemetry = startTelemetry({ serviceName: 'two', exporter: second });
    await withSpan('after', {}, async () => undefined);

    expect(second.getFinishedSpans().map((s) => s.name)).toEqual(['after']);
    expect(byName(second.getFinishedSpans(), 'after').resource.attributes['service.name']).toBe('two');

    // Shutting down the replaced instance must not unregister the live one.
    await firstTelemetry.shutdown();
    await withSpan('still-live', {}, async () => undefined);
    expect(second.getFinishedSpans().map((s) => s.name)).toEqual(['after', 'still-live']);
  });
});

describe('startTelemetry without an exporter', () => {
  it('still creates real span ids and propagates them', async () => {
    telemetry = startTelemetry({ serviceName: 'quiet' });
    const carrier: Record<string, string> = {};
    const ctx = await withSpan('op', {}, async (span) => {
      propagation.inject(context.active(), carrier);
      return span.spanContext();
    });
    expect(trace.isSpanContextValid(ctx)).toBe(true);
    expect(carrier['traceparent']).toBe(`00-${ctx.traceId}-${ctx.spanId}-01`);
  });
});

describe('startTelemetry with an OTLP endpoint', () => {
  it('posts spans as OTLP/JSON to <endpoint>/v1/traces', async () => {
    const requests: { url: string | undefined; type: string | undefined; body: string }[] = [];
    const server = createServer((req: IncomingMessage, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (body += chunk));
      req.on('end', () => {
        requests.push({ url: req.url, type: req.headers['content-type'], body });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      telemetry = startTelemetry({ serviceName: 'otlp-svc', otlpEndpoint: `http://127.0.0.1:${port}/` });
      await withSpan('exported', {}, async () => undefined);

      // No flush: the batch delay alone must deliver the span quickly.
      await eventually(
        () => requests.length,
        (n) => n > 0,
        3000,
        'a span exported',
        { intervalMs: 50, returnLast: true },
      );

      expect(requests).toHaveLength(1);
      const [request] = requests;
      expect(request?.url).toBe('/v1/traces');
      expect(request?.type).toContain('application/json');
      expect(request?.body).toContain('"exported"');
      expect(request?.body).toContain('"otlp-svc"');

      await withSpan('flushed', {}, async () => undefined);
      await telemetry.flush();
      expect(requests).toHaveLength(2);
      expect(requests[1]?.body).toContain('"flushed"');
    } finally {
      await telemetry?.shutdown();
      telemetry = undefined;
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
