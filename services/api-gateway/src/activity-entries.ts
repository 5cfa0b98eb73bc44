import type { ActivityKind, Payload } from '@switchyard/contracts';

/** What one event adds to the timeline, before it is stored. */
export interface ActivityDraft {
  tenantId: string;
  /** Names the event (subject, the pool or node it is about, its time) so a repeat is recognised. */
  source: string;
  poolId: string | null;
  nodeId: string | null;
  kind: ActivityKind;
  message: string;
  details: Record<string, unknown>;
  at: Date;
}

/** The events the timeline is made of, and the two it acknowledges without an entry. */
export type ActivitySubject =
  | 'sleep.evt.slept'
  | 'sleep.evt.policy'
  | 'activator.evt.woke'
  | 'activator.evt.failed'
  | 'node.evt.created'
  | 'node.evt.started'
  | 'node.evt.stopped'
  | 'node.evt.died'
  | 'node.evt.removed'
  | 'node.evt.draining'
  | 'node.evt.health';

type NodeFacts = { tenantId: string; poolId: string; nodeId: string; at: string };

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** An entry about one node; the event's own fields other than the node facts become details. */
function nodeEntry<E extends NodeFacts>(subject: ActivitySubject, e: E, kind: ActivityKind, message: string): ActivityDraft {
  const { tenantId, poolId, nodeId, at, ...details } = e;
  const time = new Date(at);
  return { tenantId, source: `${subject} ${nodeId} ${time.toISOString()}`, poolId, nodeId, kind, message, details, at: time };
}

/**
 * One function per subject: the entry it makes, or null for the events that do not belong on a
 * timeline people read (a container created, a HEALTHCHECK flapping: health-monitor's business).
 */
export const activityOf: { [S in ActivitySubject]: (e: Payload<S>) => ActivityDraft | null } = {
  'sleep.evt.slept': (e) => nodeEntry('sleep.evt.slept', e, 'slept', `slept: ${e.reason}`),
  'sleep.evt.policy': (e) => {
    const p = e.policy;
    const at = new Date(e.at);
    return {
      tenantId: e.tenantId,
      source: `sleep.evt.policy ${e.poolId} ${at.toISOString()}`,
      poolId: e.poolId,
      nodeId: null,
      kind: 'policy_changed',
      message: `sleep policy: ${p.enabled ? 'enabled' : 'disabled'}, idle ${p.idleWindowSec} s, min awake ${p.minAwake}`,
      details: { ...p },
      at,
    };
  },
  'activator.evt.woke': (e) =>
    nodeEntry('activator.evt.woke', e, 'woke', `woke in ${Math.round(e.readyMs)} ms (${e.trigger === 'manual' ? 'manual' : plural(e.heldConnections, 'held connection')})`),
  'activator.evt.failed': (e) => nodeEntry('activator.evt.failed', e, 'wake_failed', `wake failed: ${e.reason}`),
  'node.evt.created': () => null,
  'node.evt.started': (e) => nodeEntry('node.evt.started', e, 'started', 'started'),
  'node.evt.stopped': (e) => nodeEntry('node.evt.stopped', e, 'stopped', `stopped: ${e.reason}`),
  'node.evt.died': (e) => nodeEntry('node.evt.died', e, 'died', `died (exit code ${e.exitCode}${e.oomKilled ? ', out of memory' : ''})`),
  'node.evt.removed': (e) => nodeEntry('node.evt.removed', e, 'removed', `removed: ${e.reason}`),
  'node.evt.draining': (e) => nodeEntry('node.evt.draining', e, 'draining', `draining: ${e.reason}`),
  'node.evt.health': () => null,
};
