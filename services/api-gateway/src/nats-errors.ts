import { ClosedConnectionError, ConnectionError, DrainingConnectionError, NoRespondersError, RequestError, TimeoutError } from '@nats-io/transport-node';

/**
 * No responder, a timeout or a lost connection: the bus, or the service behind a subject, is
 * away. The client wraps a missing responder and a dropped connection in a RequestError; a
 * ServiceError is not here, since the service did answer (with an error).
 */
export function isNatsUnavailable(err: unknown): boolean {
  return (
    err instanceof NoRespondersError ||
    err instanceof TimeoutError ||
    err instanceof RequestError ||
    err instanceof ClosedConnectionError ||
    err instanceof DrainingConnectionError ||
    err instanceof ConnectionError
  );
}
