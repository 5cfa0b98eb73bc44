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
  | 'node.evt.health'
  | 'tunnel.evt.opened'
  | 'tunnel.evt.closed'
  | 'tunnel.evt.up'
  | 'tunnel.evt.down'
  | 'tunnel.evt.failover'
  | 'tunnel.evt.rotated'
  | 'tunnel.evt.expired';

type NodeFacts = { tenantId: string; poolId: string; nodeId: string; at: string };

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** An entry about one node; the event's own fields other than the node facts become details. */
function nodeEntry<E extends NodeFacts>(subject: ActivitySubject, e: E, kind: ActivityKind, message: string): ActivityDraft {
  const { tenantId, poolId, nodeId, at, ...details } = e;
  const time = new Date(at);
  return { tenantId, source: `${subject} ${nodeId} ${time.toISOString()}`, poolId, nodeId, kind, message, details, at: time };
}

type TunnelFacts = { tenantId: string; tunnelId: string; nodeId: string | null; poolId?: string; at: string };

/**
 * An entry about one tunnel, filed under its node, or under its pool for a pool's tunnel. A
 * node's tunnel events name no pool, and the entry leaves it null rather than ask
 * exit-node-manager: a tunnel closed because its node was removed has no pool left to find, and
 * the timeline must not stall while exit-node-manager is away.
 * `distinct` tells apart events of one tunnel at one instant (two paths going down together).
 */
function tunnelEntry<E extends TunnelFacts>(subject: ActivitySubject, e: E, kind: ActivityKind, message: string, distinct = ''): ActivityDraft {
  const { tenantId, nodeId, poolId, at, ...details } = e;
  const time = new Date(at);
  const source = [subject, e.tunnelId, distinct, time.toISOString()].filter(Boolean).join(' ');
  return { tenantId, source, poolId: poolId ?? null, nodeId, kind, message, details, at: time };
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
  'tunnel.evt.opened': (e) => tunnelEntry('tunnel.evt.opened', e, 'tunnel_opened', `tunnel ${e.name} open${e.endpoint ? ` at ${e.endpoint.host}:${e.endpoint.port}` : ''}`),
  'tunnel.evt.closed': (e) => tunnelEntry('tunnel.evt.closed', e, 'tunnel_closed', `tunnel ${e.name} closed${e.reason ? `: ${e.reason}` : ''}`),
  'tunnel.evt.up': (e) => tunnelEntry('tunnel.evt.up', e, 'path_up', `${e.path} up`, e.path),
  'tunnel.evt.down': (e) => tunnelEntry('tunnel.evt.down', e, 'path_down', `${e.path} down: ${e.reason}`, e.path),
  // The forwarder words the reason as a whole line ("switched to ssh: wireguard probe failed 3×",
  // "back to wireguard: healthy for 30.1 s"); it is the message as it comes.
  'tunnel.evt.failover': (e) => tunnelEntry('tunnel.evt.failover', e, 'path_switched', e.reason || (e.to ? `switched to ${e.to}` : 'no path up')),
  'tunnel.evt.rotated': (e) => tunnelEntry('tunnel.evt.rotated', e, 'keys_rotated', `keys rotated: ${e.paths.join(', ')}`, e.paths.join(',')),
  'tunnel.evt.expired': (e) => tunnelEntry('tunnel.evt.expired', e, 'key_expired', `key expired: ${e.paths.join(', ')}`, e.paths.join(',')),
};
