import type { PoolSpec } from '@switchyard/contracts';

/** What the sleep-controller answered to `sleep.req.policy` for each tenant that answered. */
export type SleepPolicyReplies = ReadonlyMap<string, readonly { readonly poolId: string; readonly policy: { readonly enabled: boolean } }[]>;

export const SLEEPY_REASON = 'not actively checked: the pool sleeps when idle (checks would keep it awake)';

/** A pool's sleep policy as last told by the sleep-controller (event or reply). */
interface SleepSetting {
  readonly tenantId: string;
  readonly enabled: boolean;
  /** When an event said it (monitor clock); -Infinity when a reply did. */
  readonly eventAt: number;
}

/**
 * Which pools sleep when idle, as far as the monitor knows: the sleep-controller's word (an
 * event, or its reply at the last resync), else the pool spec's. Their nodes go without
 * active checks: a check makes the container send packets, and a node sending packets never
 * counts as idle.
 */
export class SleepSettings {
  private readonly told = new Map<string, SleepSetting>();

  /** `trustMs`: a reply does not override what an event said this long before it was asked for. */
  constructor(private readonly trustMs: number) {}

  sleepy(poolId: string, spec: PoolSpec | undefined): boolean {
    return this.told.get(poolId)?.enabled ?? spec?.sleep?.enabled ?? false;
  }

  /** sleep.evt.policy, heard `at` (monitor clock). */
  policyChanged(p: { tenantId: string; poolId: string; policy: { enabled: boolean } }, at: number): void {
    this.told.set(p.poolId, { tenantId: p.tenantId, enabled: p.policy.enabled, eventAt: at });
  }

  /**
   * Takes in the replies to sleep.req.policy: a tenant that answered has exactly the policies
   * it listed (a pool it did not list falls back to its spec), except those an event told
   * about after (or shortly before) the snapshot was asked for. A tenant that did not answer
   * keeps what events said.
   */
  repliesRead(replies: SleepPolicyReplies, requestedAt: number): void {
    const trusted = requestedAt - this.trustMs;
    for (const [poolId, s] of this.told) if (replies.has(s.tenantId) && s.eventAt <= trusted) this.told.delete(poolId);
    for (const [tenantId, policies] of replies) {
      for (const p of policies) {
        if (!this.told.has(p.poolId)) this.told.set(p.poolId, { tenantId, enabled: p.policy.enabled, eventAt: -Infinity });
      }
    }
  }

  forget(poolId: string): void {
    this.told.delete(poolId);
  }
}
