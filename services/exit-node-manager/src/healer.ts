import { setTimeout as sleep } from 'node:timers/promises';
import { OrderFailure } from '@switchyard/service-kit';
import { DockerOpError } from './docker-ops.js';
import { afterAttempt, decide, EMPTY_RECORD, recordFailure, type HealPolicy, type HealRecord } from './heal-policy.js';
import type { Manager } from './manager.js';
import type { Log } from './ports.js';

export interface Healer {
  /** A node died on its own: bring it back, unless an attempt for it is already under way. */
  nodeDied(tenantId: string, nodeId: string): void;
  /** Waits for the attempts under way; no new ones start. */
  stop(): Promise<void>;
}

/** Runs the heal policy: one loop per troubled node, bounded by the policy's give-up count. */
export function createHealer(manager: Pick<Manager, 'heal'>, policy: HealPolicy, log: Log): Healer {
  const records = new Map<string, HealRecord>();
  const loops = new Map<string, Promise<void>>();
  const abort = new AbortController();

  async function loop(tenantId: string, nodeId: string): Promise<void> {
    for (let attempt = 0; attempt <= policy.giveUpAfter && !abort.signal.aborted; attempt++) {
      const record = records.get(nodeId) ?? EMPTY_RECORD;
      const decision = decide(record, policy);
      if (decision.action === 'give_up') {
        log.warn({ nodeId, failures: decision.failures }, 'node keeps failing; it stays in error until its next reconciliation');
        return;
      }
      try {
        await sleep(decision.delayMs, undefined, { signal: abort.signal });
      } catch {
        return;
      }
      let ok = false;
      try {
        const outcome = await manager.heal(tenantId, nodeId, decision.action);
        ok = true;
        // Deaths recorded while this attempt waited and ran count as much as the ones before it.
        records.set(nodeId, afterAttempt(records.get(nodeId) ?? record, decision.action, true, Date.now(), policy));
        if (outcome === 'healed') log.info({ nodeId, action: decision.action, delayMs: decision.delayMs }, 'node healed');
        return;
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        const expected = err instanceof OrderFailure || err instanceof DockerOpError;
        log.warn({ nodeId, action: decision.action, err: message }, expected ? 'heal attempt failed' : 'heal attempt interrupted');
      } finally {
        if (!ok) records.set(nodeId, afterAttempt(records.get(nodeId) ?? record, decision.action, false, Date.now(), policy));
      }
    }
  }

  return {
    nodeDied(tenantId, nodeId) {
      records.set(nodeId, recordFailure(records.get(nodeId) ?? EMPTY_RECORD, Date.now(), policy));
      if (loops.has(nodeId) || abort.signal.aborted) return;
      const run = loop(tenantId, nodeId).finally(() => loops.delete(nodeId));
      loops.set(nodeId, run);
    },
    async stop() {
      abort.abort();
      await Promise.allSettled(loops.values());
    },
  };
}
