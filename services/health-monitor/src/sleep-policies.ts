import type { Payload, ReplyOf } from '@switchyard/contracts';
import type { SleepPolicyReplies } from './sleep-settings.js';

type Ask = (payload: Payload<'sleep.req.policy'>) => Promise<ReplyOf<'sleep.req.policy'>>;

/**
 * Asks the sleep-controller for the sleep policies of each tenant, all at once. A tenant it
 * did not answer for is left out of the result, so the monitor keeps what events said and the
 * pool specs say for it: a silent sleep-controller must not hold up or fail a resync.
 */
export async function readSleepPolicies(ask: Ask, tenantIds: Iterable<string>, onError: (tenantId: string, err: Error) => void): Promise<SleepPolicyReplies> {
  const replies = new Map<string, ReplyOf<'sleep.req.policy'>['policies']>();
  await Promise.all(
    [...new Set(tenantIds)].map(async (tenantId) => {
      try {
        replies.set(tenantId, (await ask({ tenantId })).policies);
      } catch (err) {
        onError(tenantId, err as Error);
      }
    }),
  );
  return replies;
}
