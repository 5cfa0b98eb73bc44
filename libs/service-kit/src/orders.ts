import { Rejection, type Bus } from '@switchyard/bus';
import type { Payload } from '@switchyard/contracts';
import type { Logger } from 'pino';

/**
 * An order that cannot be carried out as asked (unknown pool, taken name, Docker refused).
 * A retry would fail the same way, so the command is settled, never redelivered.
 */
export class OrderFailure extends Error {
  override name = 'OrderFailure';
}

/** The order a command carries out, if any: commands a service sends itself may have none. */
export interface OrderRef {
  readonly orderId?: string | undefined;
  readonly tenantId: string;
}

export type OrderResult = Payload<'order.evt.fulfilled'>['result'];

export interface OrderReporter {
  /**
   * Carries out a command's work as an order. The one rule, for every service:
   * - the work ends → nothing more here (the work itself fulfils, it knows the result);
   * - an OrderFailure (or an error `isFailure` accepts) with an order → `order.evt.failed`
   *   with the reason, and the command is acked;
   * - the same without an order → a Rejection: the bus dead-letters the command with the
   *   reason, since nobody waits on an order to hear it;
   * - anything else (Postgres, Docker or NATS away) is rethrown, and the bus redelivers.
   */
  run(ref: OrderRef, what: string, work: () => Promise<void>): Promise<void>;
  /**
   * Says the order is under way. Without a `step` only the first report of an order gets through
   * the stream's de-duplication; work that runs long reports each `step` (e.g. each minute of a
   * drain), which also keeps its order from being swept as stale by the gateway.
   */
  progress(ref: OrderRef, message: string, opts?: { step?: string }): Promise<void>;
  fulfil(ref: OrderRef, result: OrderResult): Promise<void>;
}

export interface OrderReporterDeps {
  readonly publish: Bus['publish'];
  readonly log: Pick<Logger, 'warn'>;
  /** Errors besides OrderFailure that end an order (e.g. a Docker refusal). */
  readonly isFailure?: (err: unknown) => err is Error;
}

/** Order reporting, written once: every service that carries out orders reports through this. */
export function createOrderReporter(deps: OrderReporterDeps): OrderReporter {
  const { publish, log } = deps;
  const isFailure = (err: unknown): err is Error => err instanceof OrderFailure || (deps.isFailure?.(err) ?? false);

  return {
    async run(ref, what, work) {
      try {
        await work();
      } catch (err) {
        // The bus logs what it redelivers, with the error's stack.
        if (!isFailure(err)) throw err;
        log.warn({ orderId: ref.orderId, tenantId: ref.tenantId, reason: err.message }, `${what} failed`);
        if (!ref.orderId) throw new Rejection(err.message, { cause: err });
        await publish('order.evt.failed', { orderId: ref.orderId, tenantId: ref.tenantId, reason: err.message }, { msgId: `order.evt.failed:${ref.orderId}` });
      }
    },
    async progress(ref, message, opts = {}) {
      if (!ref.orderId) return;
      const msgId = opts.step ? `order.evt.progress:${ref.orderId}:${opts.step}` : `order.evt.progress:${ref.orderId}`;
      await publish('order.evt.progress', { orderId: ref.orderId, tenantId: ref.tenantId, message }, { msgId });
    },
    async fulfil(ref, result) {
      if (!ref.orderId) return;
      await publish('order.evt.fulfilled', { orderId: ref.orderId, tenantId: ref.tenantId, result }, { msgId: `order.evt.fulfilled:${ref.orderId}` });
    },
  };
}
