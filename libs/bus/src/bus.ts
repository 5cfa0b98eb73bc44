import { context, metrics, SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import { jetstream, jetstreamManager, type JetStreamClient, type JsMsg } from '@nats-io/jetstream';
import type { Msg, MsgHdrs, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { ServiceGroup } from '@nats-io/services';
import { ServiceError } from '@nats-io/services';
import {
  assertPayload,
  assertReply,
  CONSUMERS,
  ContractError,
  catalog,
  deadLetterSubject,
  formatIssues,
  HEADERS,
  isDurable,
  payloadIssues,
  replyRefusal,
  STREAMS,
  streamsOf,
  type CommandSubject,
  type ConsumerName,
  type EventSubject,
  type Payload,
  type ReplyOf,
  type RequestSubject,
  type ServiceName,
  type Subject,
} from '@switchyard/contracts';
import { backoffDelay, REDELIVERY } from './backoff.js';
import { orderFailureOf } from './dead-letters.js';
import { contextFromHeaders, traceHeaders } from './tracing.js';
import { ensureConsumer, ensureStream } from './topology.js';

const tracer = trace.getTracer('@switchyard/bus');

/** What the bus says about handler errors; pino's logger fits (the `err` key keeps the stack). */
export interface BusLog {
  warn(obj: { err: unknown; subject: string; [key: string]: unknown }, msg: string): void;
  error(obj: { err: unknown; subject: string; [key: string]: unknown }, msg: string): void;
}

export interface BusOptions {
  /** Where handler errors are logged; without one they are only counted. */
  readonly log?: BusLog;
}

/**
 * Thrown by a handler for a message that can never succeed (it is valid by schema but
 * makes no sense): the message goes to the dead-letter subject instead of being retried.
 */
export class Rejection extends Error {
  override name = 'Rejection';
}

export interface Delivery {
  readonly subject: Subject;
  readonly deliveryCount: number;
  readonly streamSequence: number;
}

type ConsumerSubject<C extends ConsumerName> = (typeof CONSUMERS)[C]['subjects'][number];
export type ConsumerHandlers<C extends ConsumerName> = {
  [S in ConsumerSubject<C>]: (payload: Payload<S>, delivery: Delivery) => Promise<void>;
};

export interface Consumption {
  /** Stops taking new messages and waits for the ones in hand. */
  stop(): Promise<void>;
  /** Settles when the loop ends; rejects if it ended by an error. */
  readonly done: Promise<void>;
}

export interface ConsumeOptions {
  /** Messages handled at once; order is only kept with 1. */
  concurrency?: number;
  /** Delay before a failed message is offered again, by delivery count. */
  retryDelayMs?: (deliveryCount: number) => number;
}

export interface PublishOptions {
  /** JetStream de-duplication id: a repeat within the stream's window is dropped. */
  msgId?: string;
}

export interface Bus {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly service: ServiceName;
  /**
   * Creates the streams this service writes or reads when missing, brings those it owns to their
   * definition, and creates or updates its durable consumers.
   */
  ensureTopology(): Promise<void>;
  publish<S extends CommandSubject | EventSubject>(subject: S, payload: Payload<S>, opts?: PublishOptions): Promise<void>;
  request<S extends RequestSubject>(subject: S, payload: Payload<S>, opts?: { timeoutMs?: number }): Promise<ReplyOf<S>>;
  consume<C extends ConsumerName>(name: C, handlers: ConsumerHandlers<C>, opts?: ConsumeOptions): Consumption;
  subscribe<S extends EventSubject>(subject: S, handler: (payload: Payload<S>) => Promise<void>, opts?: { queue?: string }): Consumption;
  /** Adds a request/reply endpoint to a NATS micro service group (so $SRV discovers it). */
  serve<S extends RequestSubject>(group: ServiceGroup, subject: S, handler: (payload: Payload<S>) => Promise<ReplyOf<S>>): void;
  deadLetter(subject: string, data: Uint8Array, reason: string, original?: MsgHdrs, msgId?: string): Promise<void>;
  /** Handler errors so far, by subject (also exported as the switchyard.bus.handler_errors metric). */
  handlerErrors(): Readonly<Record<string, number>>;
}

const encoder = new TextEncoder();
const defaultRetryDelay = (deliveryCount: number) => backoffDelay(REDELIVERY, deliveryCount);

function endSpan(span: Span, err?: unknown): void {
  if (err) {
    span.recordException(err instanceof Error ? err : new Error(String(err)));
    span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
  }
  span.end();
}

function messagingAttributes(subject: string, operation: string) {
  return { 'messaging.system': 'nats', 'messaging.destination.name': subject, 'messaging.operation.type': operation };
}

/** Parses and validates a received payload; a string reason when it is unusable. */
function decode(subject: Subject, msg: { json<T>(): T }): { ok: true; payload: unknown } | { ok: false; reason: string } {
  let payload: unknown;
  try {
    payload = msg.json();
  } catch (err) {
    return { ok: false, reason: `invalid JSON: ${(err as Error).message}` };
  }
  const issues = payloadIssues(subject, payload);
  if (issues.length) return { ok: false, reason: `invalid ${subject} payload: ${formatIssues(issues)}` };
  return { ok: true, payload };
}

export function createBus(nc: NatsConnection, service: ServiceName, busOpts: BusOptions = {}): Bus {
  const js = jetstream(nc);
  const errorCounts: Record<string, number> = {};
  // Taken when the bus is made, not when the module loads, so a meter provider registered by
  // then exports it (the OpenTelemetry API keeps a no-op meter handed out before one exists).
  const handlerErrorCounter = metrics.getMeter('@switchyard/bus').createCounter('switchyard.bus.handler_errors', {
    description: 'Handler errors per subject: retried or dead-lettered JetStream messages, failed core subscriptions and requests',
  });
  /** Counts a handler error of `subject`; returns the count so far, which its log line carries. */
  function countError(subject: string): number {
    errorCounts[subject] = (errorCounts[subject] ?? 0) + 1;
    handlerErrorCounter.add(1, { 'messaging.destination.name': subject, 'switchyard.service': service });
    return errorCounts[subject];
  }

  async function deadLetter(subject: string, data: Uint8Array, reason: string, original?: MsgHdrs, msgId?: string) {
    const h = traceHeaders(
      {
        [HEADERS.deadLetterReason]: reason.slice(0, 1024),
        [HEADERS.deadLetterService]: service,
        [HEADERS.deadLetterSubject]: subject,
      },
      original ? contextFromHeaders(original) : context.active(),
    );
    await js.publish(deadLetterSubject(subject), data, { headers: h, ...(msgId ? { msgID: msgId } : {}) });
  }

  async function publish<S extends CommandSubject | EventSubject>(subject: S, payload: Payload<S>, opts: PublishOptions = {}) {
    assertPayload(subject, payload);
    const span = tracer.startSpan(`${subject} publish`, {
      kind: SpanKind.PRODUCER,
      attributes: { ...messagingAttributes(subject, 'publish'), ...(opts.msgId ? { 'messaging.message.id': opts.msgId } : {}) },
    });
    try {
      const h = traceHeaders({}, trace.setSpan(context.active(), span));
      const data = encoder.encode(JSON.stringify(payload));
      if (isDurable(subject)) await js.publish(subject, data, { headers: h, ...(opts.msgId ? { msgID: opts.msgId } : {}) });
      else nc.publish(subject, data, { headers: h });
      endSpan(span);
    } catch (err) {
      endSpan(span, err);
      throw err;
    }
  }

  async function request<S extends RequestSubject>(subject: S, payload: Payload<S>, opts: { timeoutMs?: number } = {}) {
    assertPayload(subject, payload);
    return tracer.startActiveSpan(`${subject} request`, { kind: SpanKind.CLIENT, attributes: messagingAttributes(subject, 'send') }, async (span) => {
      try {
        const reply = await nc.request(subject, JSON.stringify(payload), { timeout: opts.timeoutMs ?? 5000, headers: traceHeaders() });
        const remoteError = ServiceError.toServiceError(reply);
        if (remoteError) throw remoteError;
        const body: unknown = reply.json();
        assertReply(subject, body);
        endSpan(span);
        return body;
      } catch (err) {
        endSpan(span, err);
        throw err;
      }
    });
  }

  function consume<C extends ConsumerName>(name: C, handlers: ConsumerHandlers<C>, opts: ConsumeOptions = {}): Consumption {
    const def = CONSUMERS[name];
    const concurrency = Math.max(1, opts.concurrency ?? 1);
    const retryDelay = opts.retryDelayMs ?? defaultRetryDelay;
    let closeMessages: (() => Promise<unknown>) | undefined;
    let stopped = false;

    async function handle(m: JsMsg): Promise<void> {
      const subject = m.subject;
      const parent = contextFromHeaders(m.headers);
      const span = tracer.startSpan(
        `${subject} process`,
        { kind: SpanKind.CONSUMER, attributes: { ...messagingAttributes(subject, 'process'), 'messaging.consumer.group.name': def.durable } },
        parent,
      );
      const msgId = `${def.stream}:${m.info.streamSequence}:${def.durable}`;
      // A short ackWait redelivers quickly after a crash; a long handler says it is still at it.
      const heartbeat = setInterval(() => m.working(), Math.max(500, def.ackWaitMs / 3));
      await context.with(trace.setSpan(parent, span), async () => {
        /** `tenantReason` is what the order says, when the internal reason is not for tenants. */
        const reject = async (reason: string, tenantReason = reason) => {
          await deadLetter(subject, m.data, reason, m.headers, msgId);
          const failure = orderFailureOf(subject, m.data, tenantReason);
          if (failure) await publish('order.evt.failed', failure, { msgId: `order.evt.failed:${failure.orderId}` });
          m.term(reason.slice(0, 200));
        };
        try {
          const handler = (handlers as Record<string, ((p: unknown, d: Delivery) => Promise<void>) | undefined>)[subject];
          if (!handler || !(def.subjects as readonly string[]).includes(subject)) {
            await reject(`${service} has no handler for ${subject}`);
            return endSpan(span, new Error('no handler'));
          }
          const decoded = decode(subject as Subject, m);
          if (!decoded.ok) {
            await reject(decoded.reason);
            return endSpan(span, new Error(decoded.reason));
          }
          await handler(decoded.payload, { subject: subject as Subject, deliveryCount: m.info.deliveryCount, streamSequence: m.info.streamSequence });
          m.ack();
          endSpan(span);
        } catch (err) {
          endSpan(span, err);
          const errors = countError(subject);
          busOpts.log?.warn({ err, subject, deliveryCount: m.info.deliveryCount, errors }, 'handler failed; the message is retried or dead-lettered');
          const message = err instanceof Error ? err.message : String(err);
          try {
            if (err instanceof Rejection || err instanceof ContractError) await reject(message);
            else if (m.info.deliveryCount >= def.maxDeliver)
              await reject(`gave up after ${m.info.deliveryCount} deliveries: ${message}`, `gave up after ${m.info.deliveryCount} attempts: the service kept failing`);
            else m.nak(retryDelay(m.info.deliveryCount));
          } catch {
            // The dead-letter publish failed (NATS going away): leave the message to be
            // redelivered rather than lose it.
            m.nak(retryDelay(m.info.deliveryCount));
          }
        } finally {
          clearInterval(heartbeat);
        }
      });
    }

    const done = (async () => {
      const consumer = await js.consumers.get(def.stream, def.durable);
      const messages = await consumer.consume({ max_messages: Math.max(8, concurrency * 2) });
      closeMessages = () => messages.close();
      if (stopped) await messages.close();
      const inflight = new Set<Promise<void>>();
      for await (const m of messages) {
        const p: Promise<void> = handle(m).finally(() => inflight.delete(p));
        inflight.add(p);
        if (inflight.size >= concurrency) await Promise.race(inflight);
      }
      await Promise.all(inflight);
    })();
    done.catch(() => undefined);
    return {
      done,
      async stop() {
        stopped = true;
        await closeMessages?.();
        await done.catch(() => undefined);
      },
    };
  }

  function subscribe<S extends EventSubject>(subject: S, handler: (payload: Payload<S>) => Promise<void>, opts: { queue?: string } = {}): Consumption {
    const sub: Subscription = nc.subscribe(subject, opts.queue ? { queue: opts.queue } : {});
    const done = (async () => {
      for await (const m of sub) {
        const span = tracer.startSpan(`${subject} process`, { kind: SpanKind.CONSUMER, attributes: messagingAttributes(subject, 'process') }, contextFromHeaders(m.headers));
        await context.with(trace.setSpan(context.active(), span), async () => {
          const decoded = decode(subject, m);
          try {
            if (!decoded.ok) {
              await deadLetter(subject, m.data, decoded.reason, m.headers);
              return endSpan(span, new Error(decoded.reason));
            }
            await handler(decoded.payload as Payload<S>);
            endSpan(span);
          } catch (err) {
            // A core message is not redelivered: what is lost must at least be seen.
            endSpan(span, err);
            const errors = countError(subject);
            busOpts.log?.error({ err, subject, errors }, 'handler failed; the event is dropped');
          }
        });
      }
    })();
    done.catch(() => undefined);
    return {
      done,
      async stop() {
        await sub.drain();
        await done.catch(() => undefined);
      },
    };
  }

  function serve<S extends RequestSubject>(group: ServiceGroup, subject: S, handler: (payload: Payload<S>) => Promise<ReplyOf<S>>) {
    // Message callbacks must not be async (their rejections are lost), so each request runs
    // in a promise of its own that always answers.
    const respond = async (msg: Msg & { respondError(code: number, description: string): boolean }) => {
      const span = tracer.startSpan(`${subject} process`, { kind: SpanKind.SERVER, attributes: messagingAttributes(subject, 'process') }, contextFromHeaders(msg.headers));
      await context.with(trace.setSpan(context.active(), span), async () => {
        // Checked before anything runs: an answer on a subject the requester picked would be
        // published with this identity's reply rights, which the server does not limit.
        const refused = replyRefusal(subject, msg.reply);
        if (refused) {
          const errors = countError(subject);
          busOpts.log?.error({ err: new Error(refused), subject, errors }, 'request not answered: its reply subject is refused; dead-lettered');
          await deadLetter(subject, msg.data, refused, msg.headers).catch(() => undefined);
          return endSpan(span, new Error(refused));
        }
        const decoded = decode(subject, msg);
        if (!decoded.ok) {
          msg.respondError(400, decoded.reason);
          await deadLetter(subject, msg.data, decoded.reason, msg.headers).catch(() => undefined);
          return endSpan(span, new Error(decoded.reason));
        }
        try {
          const reply = await handler(decoded.payload as Payload<S>);
          assertReply(subject, reply);
          msg.respond(JSON.stringify(reply));
          endSpan(span);
        } catch (err) {
          const rejected = err instanceof Rejection;
          if (!rejected) {
            const errors = countError(subject);
            busOpts.log?.error({ err, subject, errors }, 'request handler failed; answered 500');
          }
          msg.respondError(rejected ? 400 : 500, rejected ? (err as Error).message : 'internal error');
          endSpan(span, err);
        }
      });
    };
    group.addEndpoint(subject.replaceAll('.', '-'), {
      subject,
      metadata: { summary: catalog[subject].summary },
      handler: (err, msg) => {
        if (!err) void respond(msg);
      },
    });
  }

  async function ensureTopology() {
    const jsm = await jetstreamManager(nc);
    // Only the streams it writes or reads: its NATS identity may create no others, and update
    // only those it owns.
    for (const name of streamsOf(service)) await ensureStream(jsm, STREAMS[name], { owner: STREAMS[name].owner === service });
    for (const c of Object.values(CONSUMERS)) if (c.service === service) await ensureConsumer(jsm, c);
  }

  return { nc, js, service, ensureTopology, publish, request, consume, subscribe, serve, deadLetter, handlerErrors: () => ({ ...errorCounts }) };
}
