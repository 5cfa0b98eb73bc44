import { context, diag, propagation, SpanStatusCode, trace, type Attributes, type Span, type SpanKind, type Tracer } from '@opentelemetry/api';
import { hostname } from 'node:os';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { defaultResource, envDetector, processDetector, resourceFromAttributes } from '@opentelemetry/resources';
import { core, NodeSDK } from '@opentelemetry/sdk-node';
import { BatchSpanProcessor, NoopSpanProcessor, SimpleSpanProcessor, type SpanExporter, type SpanProcessor } from '@opentelemetry/sdk-trace-base';

export { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
export type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';

export interface TelemetryOptions {
  serviceName: string;
  /** Base OTLP/HTTP endpoint, e.g. http://127.0.0.1:4318; spans go to `<endpoint>/v1/traces`. */
  otlpEndpoint?: string;
  /** Receives every span as soon as it ends; meant for tests. */
  exporter?: SpanExporter;
}

export interface Telemetry {
  tracer: Tracer;
  flush(): Promise<void>;
  shutdown(): Promise<void>;
}

export interface WithSpanOptions {
  kind?: SpanKind;
  attributes?: Attributes;
}

// Short enough that integration tests see spans within a second, long enough to batch.
const EXPORT_DELAY_MS = 500;

class TelemetryInstance implements Telemetry {
  readonly tracer: Tracer;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly sdk: NodeSDK,
    private readonly processors: SpanProcessor[],
    serviceName: string,
  ) {
    this.tracer = trace.getTracer(serviceName);
  }

  async flush(): Promise<void> {
    await Promise.all(this.processors.map((p) => p.forceFlush()));
  }

  shutdown(): Promise<void> {
    if (current === this) {
      current = undefined;
      unregisterGlobals();
    }
    return this.close();
  }

  close(): Promise<void> {
    this.closing ??= this.sdk.shutdown();
    return this.closing;
  }
}

let current: TelemetryInstance | undefined;

function unregisterGlobals(): void {
  trace.disable();
  context.disable();
  propagation.disable();
}

function spanProcessors(opts: TelemetryOptions): SpanProcessor[] {
  const processors: SpanProcessor[] = [];
  if (opts.otlpEndpoint) {
    const url = `${opts.otlpEndpoint.replace(/\/+$/, '')}/v1/traces`;
    processors.push(new BatchSpanProcessor(new OTLPTraceExporter({ url }), { scheduledDelayMillis: EXPORT_DELAY_MS }));
  }
  if (opts.exporter) processors.push(new SimpleSpanProcessor(opts.exporter));
  // NodeSDK installs no tracer provider for an empty list, and a no-op provider mints no ids,
  // so traceparent would never be injected; a real provider that exports nowhere keeps ids flowing.
  if (processors.length === 0) processors.push(new NoopSpanProcessor());
  return processors;
}

/**
 * Starts the OpenTelemetry SDK and registers the global tracer provider, W3C propagator and
 * AsyncLocalStorage context manager. Starting again replaces the previous instance (its
 * pending spans are flushed in the background) so tests can each install their own exporter.
 */
export function startTelemetry(opts: TelemetryOptions): Telemetry {
  const previous = current;
  if (previous) {
    current = undefined;
    unregisterGlobals();
    previous.close().catch((err: unknown) => diag.warn('switchyard telemetry: shutting down the previous SDK failed', err));
  }

  const processors = spanProcessors(opts);
  const sdk = new NodeSDK({
    serviceName: opts.serviceName,
    // The default host detector reads host.id asynchronously and every span then waits for it
    // before export; with synchronous detectors only, a test exporter has the span as soon as
    // span.end() returns.
    resource: defaultResource().merge(resourceFromAttributes({ 'host.name': hostname() })),
    resourceDetectors: [envDetector, processDetector],
    spanProcessors: processors,
    textMapPropagator: new core.CompositePropagator({
      propagators: [new core.W3CTraceContextPropagator(), new core.W3CBaggagePropagator()],
    }),
    instrumentations: [],
    // Left undefined, NodeSDK builds OTLP metric and log exporters from OTEL_* variables
    // that would post to localhost:4318 every minute; this project only exports traces.
    metricReaders: [],
    logRecordProcessors: [],
  });
  sdk.start();

  const instance = new TelemetryInstance(sdk, processors, opts.serviceName);
  current = instance;
  return instance;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Runs `fn` inside a new active span that ends when `fn` settles; a failure is recorded on
 * the span (exception event, ERROR status) and rethrown unchanged.
 */
export function withSpan<T>(name: string, opts: WithSpanOptions, fn: (span: Span) => Promise<T>): Promise<T> {
  const tracer = current?.tracer ?? trace.getTracer('@switchyard/telemetry');
  const spanOptions = {
    ...(opts.kind !== undefined ? { kind: opts.kind } : {}),
    ...(opts.attributes !== undefined ? { attributes: opts.attributes } : {}),
  };
  return tracer.startActiveSpan(name, spanOptions, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      span.recordException(err instanceof Error ? err : errorMessage(err));
      span.setStatus({ code: SpanStatusCode.ERROR, message: errorMessage(err) });
      throw err;
    } finally {
      span.end();
    }
  });
}
