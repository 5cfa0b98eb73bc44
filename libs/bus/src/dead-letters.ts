import { catalog, isSubject, payloadIssues, type Payload } from '@switchyard/contracts';

/**
 * The order.evt.failed a dead-lettered message owes, if any. A command carries out an order;
 * once the bus gives up on it nobody else will report that order, so it would stay `accepted`
 * for ever. Only commands qualify (an event's orderId is someone else's report), and only when
 * the raw payload still names a well-formed order and tenant: a payload rejected for another
 * field (or exhausted by retries) fails its order; one with no usable ids has no order to fail.
 */
export function orderFailureOf(subject: string, data: Uint8Array, reason: string): Payload<'order.evt.failed'> | undefined {
  if (!isSubject(subject) || catalog[subject].type !== 'command') return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(data));
  } catch {
    return undefined;
  }
  if (typeof raw !== 'object' || raw === null) return undefined;
  const { orderId, tenantId } = raw as Record<string, unknown>;
  const failure = { orderId, tenantId, reason: `not carried out: ${reason}`.slice(0, 1024) };
  return payloadIssues('order.evt.failed', failure).length === 0 ? (failure as Payload<'order.evt.failed'>) : undefined;
}
