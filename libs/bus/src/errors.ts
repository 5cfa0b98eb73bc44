import { ClosedConnectionError, ConnectionError, DrainingConnectionError, NoRespondersError, RequestError, TimeoutError } from '@nats-io/transport-node';

const UNAVAILABLE = [NoRespondersError, TimeoutError, RequestError, ClosedConnectionError, DrainingConnectionError, ConnectionError];

/**
 * True when a publish or request failed because the bus, or the service behind a subject, is
 * away (no responder, a timeout, a lost or closing connection), told by the client's own error
 * classes: the caller may answer "unavailable, retry" rather than "internal error".
 */
export function isBusUnavailable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (UNAVAILABLE.some((cls) => e instanceof cls)) return true;
  }
  return false;
}
