import { context, propagation, ROOT_CONTEXT, type Context, type TextMapGetter, type TextMapSetter } from '@opentelemetry/api';
import { headers as createHeaders, type MsgHdrs } from '@nats-io/transport-node';

// NATS headers are case-sensitive and `get` answers "" for a missing key, so the default
// propagator getter would silently break the trace: read and write through these.
const setter: TextMapSetter<MsgHdrs> = {
  set: (carrier, key, value) => carrier.set(key.toLowerCase(), value),
};
const getter: TextMapGetter<MsgHdrs | undefined> = {
  keys: (carrier) => (carrier ? carrier.keys() : []),
  get: (carrier, key) => {
    const value = carrier?.get(key.toLowerCase());
    return value ? value : undefined;
  },
};

/** Headers carrying the active trace context (plus any extra headers given). */
export function traceHeaders(extra: Record<string, string> = {}, ctx: Context = context.active()): MsgHdrs {
  const h = createHeaders();
  for (const [k, v] of Object.entries(extra)) h.set(k, v);
  propagation.inject(ctx, h, setter);
  return h;
}

/** The remote parent carried by a message; a fresh root when there is none. */
export function contextFromHeaders(h: MsgHdrs | undefined): Context {
  return propagation.extract(ROOT_CONTEXT, h, getter);
}

/** Rebuilds a context from a stored W3C traceparent, e.g. one kept in an outbox row. */
export function contextFromTraceparent(traceparent: string | null | undefined): Context {
  if (!traceparent) return ROOT_CONTEXT;
  return propagation.extract(
    ROOT_CONTEXT,
    { traceparent },
    {
      keys: (c) => Object.keys(c),
      get: (c, k) => (c as Record<string, string>)[k],
    },
  );
}

/** The W3C traceparent of the active context, to store next to a row written now. */
export function currentTraceparent(ctx: Context = context.active()): string | null {
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  return carrier['traceparent'] ?? null;
}
