import { PATH_KINDS, type PathKind } from './paths.js';
import type { Target } from './probe.js';

/** One path of a tunnel as the edge sees it: where a connection over it is dialled. */
export interface PathSpec {
  readonly kind: PathKind;
  readonly target: Target;
}

export interface ForwarderOptions {
  /** The tunnel's public endpoint; port 0 takes a free port (see `Forwarder.port`). */
  readonly host: string;
  readonly port: number;
  /** In order of preference; at least one, each kind at most once. */
  readonly paths: readonly PathSpec[];
  /** Between the starts of two probes of a path. */
  readonly intervalMs?: number;
  /** Bounds a probe's connect, and a new connection's dial of its path. */
  readonly probeTimeoutMs?: number;
  /** Failed checks in a row that take a path down. */
  readonly fall?: number;
  /** Good probes in a row that bring a path back up. */
  readonly rise?: number;
  /** How long a more preferred path must stay up before new connections go back to it. */
  readonly holdDownMs?: number;
  /** Once one side of a connection has ended, the other direction gets this long before both close. */
  readonly halfCloseMs?: number;
  /**
   * Path up and down, and a switch of the path for new connections. Called synchronously from
   * the forwarder's socket and timer callbacks: it must not throw (the error would escape into
   * the event loop) and should hand slow work (a publish) off.
   */
  readonly onEvent?: (event: ForwarderEvent) => void;
}

export type ForwarderEvent =
  | { readonly type: 'path-up'; readonly kind: PathKind; readonly target: Target; readonly latencyMs: number | undefined }
  /** `reason`: "wireguard probe failed 3× (ECONNREFUSED)". */
  | { readonly type: 'path-down'; readonly kind: PathKind; readonly target: Target; readonly reason: string }
  /** `to` undefined: no path is up, new connections are closed. `reason` is a line for the activity timeline. */
  | { readonly type: 'switch'; readonly from: PathKind | undefined; readonly to: PathKind | undefined; readonly reason: string };

/**
 * The defaults: a probe a second and three failures before a path is down puts new
 * connections on the next path about 3 s after the preferred one breaks; 30 s of health
 * before failback keeps a flapping path from pulling them back and forth. Half-close as the
 * load balancer and the activator.
 */
export const FORWARDER_DEFAULTS = {
  intervalMs: 1000,
  probeTimeoutMs: 1000,
  fall: 3,
  rise: 1,
  holdDownMs: 30_000,
  halfCloseMs: 60_000,
} as const;

export type ResolvedOptions = Required<Omit<ForwarderOptions, 'onEvent'>> & Pick<ForwarderOptions, 'onEvent'>;

/** A bad option, named by its path in the options (`paths[1].target.port`), for a 400 that points at the field. */
export class ForwarderOptionError extends Error {
  constructor(
    readonly field: string,
    reason: string,
  ) {
    super(`${field}: ${reason}`);
    this.name = 'ForwarderOptionError';
  }
}

/** The options with defaults filled in; throws a `ForwarderOptionError` for the first bad one. */
export function resolveOptions(o: ForwarderOptions): ResolvedOptions {
  checkHost('host', o.host);
  checkPort('port', o.port, 0);
  if (!Array.isArray(o.paths) || o.paths.length === 0) throw new ForwarderOptionError('paths', 'at least one path is needed');
  const seen = new Set<PathKind>();
  o.paths.forEach((p, i) => {
    if (!PATH_KINDS.includes(p?.kind)) throw new ForwarderOptionError(`paths[${i}].kind`, `must be one of ${PATH_KINDS.join(', ')}; got ${show(p?.kind)}`);
    if (seen.has(p.kind)) throw new ForwarderOptionError(`paths[${i}].kind`, `${p.kind} is listed twice; each kind may appear once`);
    seen.add(p.kind);
    checkTarget(`paths[${i}].target`, p.target);
  });
  const resolved: ResolvedOptions = {
    host: o.host,
    port: o.port,
    paths: o.paths.map((p) => ({ kind: p.kind, target: { host: p.target.host, port: p.target.port } })),
    intervalMs: o.intervalMs ?? FORWARDER_DEFAULTS.intervalMs,
    probeTimeoutMs: o.probeTimeoutMs ?? FORWARDER_DEFAULTS.probeTimeoutMs,
    fall: o.fall ?? FORWARDER_DEFAULTS.fall,
    rise: o.rise ?? FORWARDER_DEFAULTS.rise,
    holdDownMs: o.holdDownMs ?? FORWARDER_DEFAULTS.holdDownMs,
    halfCloseMs: o.halfCloseMs ?? FORWARDER_DEFAULTS.halfCloseMs,
    onEvent: o.onEvent,
  };
  for (const field of ['intervalMs', 'probeTimeoutMs', 'fall', 'rise', 'halfCloseMs'] as const) checkInteger(field, resolved[field], 1);
  checkInteger('holdDownMs', resolved.holdDownMs, 0);
  if (o.onEvent !== undefined && typeof o.onEvent !== 'function') throw new ForwarderOptionError('onEvent', `must be a function; got ${show(o.onEvent)}`);
  return resolved;
}

/** A path's target, checked (also for `setTarget`). */
export function checkTarget(field: string, t: Target): void {
  if (typeof t !== 'object' || t === null) throw new ForwarderOptionError(field, `must be { host, port }; got ${show(t)}`);
  checkHost(`${field}.host`, t.host);
  checkPort(`${field}.port`, t.port, 1);
}

function checkHost(field: string, v: unknown): void {
  if (typeof v !== 'string' || v.trim() === '') throw new ForwarderOptionError(field, `must be a host name or address; got ${show(v)}`);
}

function checkPort(field: string, v: unknown, min: 0 | 1): void {
  if (!Number.isInteger(v) || (v as number) < min || (v as number) > 65535) throw new ForwarderOptionError(field, `must be an integer from ${min} to 65535; got ${show(v)}`);
}

function checkInteger(field: string, v: unknown, min: number): void {
  // Node's timers take at most 2^31-1 ms; a larger value would fire at once.
  if (!Number.isInteger(v) || (v as number) < min || (v as number) > 2 ** 31 - 1)
    throw new ForwarderOptionError(field, `must be an integer from ${min} to ${2 ** 31 - 1}; got ${show(v)}`);
}

function show(v: unknown): string {
  return v === undefined ? 'undefined' : (JSON.stringify(v) ?? String(v));
}
