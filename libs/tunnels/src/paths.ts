// Path health and path choice, pure: the caller passes the clock (`now`, in ms) and keeps the
// records, so the same rules serve the forwarder, the service's state table and unit tests
// with a fake clock.

/** One way from the edge to a node's host; a tunnel lists its paths in order of preference. */
export type PathKind = 'wireguard' | 'ssh' | 'direct';

export const PATH_KINDS: readonly PathKind[] = ['wireguard', 'ssh', 'direct'];

/** What one check of a path found: a connect and its latency, or why it failed (an error code such as ECONNREFUSED). */
export type ProbeResult = { readonly ok: true; readonly latencyMs: number } | { readonly ok: false; readonly reason: string };

export interface PathHealth {
  readonly kind: PathKind;
  readonly up: boolean;
  /** Failed checks in a row (probes, and dials of new connections); a success resets it. */
  readonly failures: number;
  /** Successful probes in a row; a failure resets it. */
  readonly successes: number;
  /** The last successful probe's connect latency; kept while the path is down, so `up` says whether it is current. */
  readonly latencyMs: number | undefined;
  /** The last failure's reason, kept after the path recovers: it explains the last switch. */
  readonly lastError: string | undefined;
  /** When the path last went up or down (its first probe counts); a failback waits on it. */
  readonly since: number;
}

/**
 * How many checks in a row change a path's state. `fall` above 1 keeps one lost probe from
 * moving every new connection; `rise` above 1 asks a path that went down to prove itself
 * before it takes connections again.
 */
export interface RiseFall {
  readonly fall: number;
  readonly rise: number;
}

export const DEFAULT_RISE_FALL: RiseFall = { fall: 3, rise: 1 };

/**
 * A path's record from its first probe. With no history to weigh, that probe decides: the
 * forwarder probes every path once before it listens, so its first connection already has a
 * path (or is refused at once) rather than waiting `rise` intervals.
 */
export function firstHealth(kind: PathKind, result: ProbeResult, now: number): PathHealth {
  return result.ok
    ? { kind, up: true, failures: 0, successes: 1, latencyMs: result.latencyMs, lastError: undefined, since: now }
    : { kind, up: false, failures: 1, successes: 0, latencyMs: undefined, lastError: result.reason, since: now };
}

/** The record after one more check: `fall` failures in a row take an up path down, `rise` successes bring a down one up. */
export function applyProbe(h: PathHealth, result: ProbeResult, now: number, rf: RiseFall = DEFAULT_RISE_FALL): PathHealth {
  if (result.ok) {
    const successes = h.successes + 1;
    const up = h.up || successes >= rf.rise;
    return { ...h, up, failures: 0, successes, latencyMs: result.latencyMs, since: up === h.up ? h.since : now };
  }
  const failures = h.failures + 1;
  const up = h.up && failures < rf.fall;
  return { ...h, up, failures, successes: 0, lastError: result.reason, since: up === h.up ? h.since : now };
}

/** The path for new connections; when it differs from the current one, or there is none, why (a line for the activity timeline). */
export interface Choice {
  readonly kind: PathKind | undefined;
  readonly reason?: string;
}

/**
 * The first up path in the configured order, except that a healthy current path is left for
 * a more preferred one only once that one has been up for `holdDownMs` without a break: a
 * path that flaps would otherwise pull new connections back and forth at every probe. A
 * current path that is down is left at once for the best up path, held down or not: any up
 * path is better than none. Connections already open are the caller's and never move.
 */
export function choosePath(paths: readonly PathHealth[], current: PathKind | undefined, now: number, holdDownMs: number): Choice {
  const currentAt = paths.findIndex((p) => p.kind === current);
  const currentUp = currentAt >= 0 && paths[currentAt]!.up;
  const chosenAt = paths.findIndex((p, i) => p.up && !(currentUp && i < currentAt && now - p.since < holdDownMs));
  const chosen = paths[chosenAt]?.kind;
  if (chosen === current && chosen !== undefined) return { kind: chosen };
  return { kind: chosen, reason: switchReason(paths, currentAt, chosenAt, now) };
}

function switchReason(paths: readonly PathHealth[], fromAt: number, toAt: number, now: number): string {
  const from = paths[fromAt];
  const to = paths[toAt];
  if (!to) return `no healthy path: ${paths.map(failureText).join('; ')}`;
  if (!from) return toAt === 0 ? `using ${to.kind}: first path, healthy` : `using ${to.kind}: ${paths.slice(0, toAt).map(failureText).join('; ')}`;
  if (toAt > fromAt) return `switched to ${to.kind}: ${failureText(from)}`;
  return from.up ? `back to ${to.kind}: healthy for ${seconds(now - to.since)}` : `back to ${to.kind}: ${failureText(from)}`;
}

/** "wireguard probe failed 3× (ECONNREFUSED)": why a path is down, in the words of the activity timeline. */
export function failureText(h: PathHealth): string {
  const why = h.lastError ? ` (${h.lastError})` : '';
  // Down with good probes since its last failure: on its way up, `rise` not reached yet.
  if (h.failures === 0) return `${h.kind} down, ${h.successes} good probe${h.successes === 1 ? '' : 's'} since it failed${why}`;
  return `${h.kind} probe failed ${h.failures}×${why}`;
}

function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(1))} s`;
}
