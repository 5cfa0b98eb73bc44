import type { Bus } from '@switchyard/bus';
import type { Payload, ReplyOf, SleepPolicy } from '@switchyard/contracts';
import type { ServiceContext } from '@switchyard/service-kit';
import type { IdleDetector, TrackedNode } from './idle-detector.js';
import type { PolicyStore } from './policy-store.js';

/** The part of the service's logger the controller's handlers use. */
export type Log = Pick<ServiceContext<unknown>['log'], 'info' | 'warn'>;

export interface SleeperDeps {
  /** activator.req.arm; throws when no activator answers in time. */
  readonly arm: (request: Payload<'activator.req.arm'>) => Promise<ReplyOf<'activator.req.arm'>>;
  readonly publish: Bus['publish'];
  readonly log: Log;
}

export interface Why {
  /** For sleep.evt.slept: "manual", "idle: no outbound packets for 600 s". */
  readonly reason: string;
  readonly idleSec: number;
  /** A manual sleep's order: ENM fulfils or fails it with node.cmd.sleep. */
  readonly orderId?: string | undefined;
}

export type SleepOutcome = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/**
 * Arms the activator's catch of the node's ports, and only once it is armed asks ENM to stop
 * the node (a node stopped first would refuse connections until armed), then records the
 * sleep. A refused or unanswered arm leaves the node running. Publishing failures throw.
 */
export async function putToSleep(deps: SleeperDeps, node: TrackedNode, policy: Pick<SleepPolicy, 'probeIntervalMs' | 'probeTimeoutMs'>, why: Why): Promise<SleepOutcome> {
  const ids = { tenantId: node.tenantId, poolId: node.poolId, nodeId: node.nodeId };
  let reply: ReplyOf<'activator.req.arm'>;
  try {
    reply = await deps.arm({ ...ids, ports: [...node.ports], probeIntervalMs: policy.probeIntervalMs, probeTimeoutMs: policy.probeTimeoutMs });
  } catch (err) {
    return { ok: false, reason: `the socket activator did not arm the catch of node ${node.nodeId}: ${err instanceof Error ? err.message : String(err)}` };
  }
  if (!reply.ok) return { ok: false, reason: `the socket activator refused to arm the catch of node ${node.nodeId}: ${reply.error ?? 'no reason given'}` };

  // With an order, a redelivered command repeats these under the same ids and JetStream drops the repeats.
  await deps.publish(
    'node.cmd.sleep',
    { ...(why.orderId ? { orderId: why.orderId } : {}), tenantId: node.tenantId, nodeId: node.nodeId, reason: 'sleep' },
    why.orderId ? { msgId: `node.cmd.sleep:${why.orderId}` } : {},
  );
  await deps.publish(
    'sleep.evt.slept',
    { ...ids, at: new Date().toISOString(), reason: why.reason, idleSec: why.idleSec },
    why.orderId ? { msgId: `sleep.evt.slept:${why.orderId}` } : {},
  );
  deps.log.info({ ...ids, reason: why.reason }, 'node put to sleep');
  return { ok: true };
}

export interface IdleSweepDeps extends SleeperDeps {
  readonly detector: IdleDetector;
  readonly policies: Pick<PolicyStore, 'get'>;
  /** Wait after a failed attempt before the node is tried again. */
  readonly retryMs: number;
}

/** One round of the ticker: every node idle past its pool's window is put to sleep. */
export async function sleepIdleNodes(deps: IdleSweepDeps, now: number): Promise<void> {
  const { detector } = deps;
  const candidates = detector.candidates((t, p) => deps.policies.get(t, p), now);
  await Promise.all(
    candidates.map(async ({ node, policy, idleSec }) => {
      if (!detector.beginSleep(node.nodeId, now)) return;
      try {
        const outcome = await putToSleep(deps, node, policy, { reason: `idle: no outbound packets for ${idleSec} s`, idleSec });
        if (!outcome.ok) {
          detector.sleepFailed(node.nodeId, Date.now() + deps.retryMs);
          deps.log.warn({ nodeId: node.nodeId, reason: outcome.reason, retryInMs: deps.retryMs }, 'idle node left awake');
        }
      } catch (err) {
        detector.sleepFailed(node.nodeId, Date.now() + deps.retryMs);
        deps.log.warn({ nodeId: node.nodeId, err: err instanceof Error ? err.message : String(err), retryInMs: deps.retryMs }, 'idle node left awake');
      }
    }),
  );
}
