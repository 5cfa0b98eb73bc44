import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { dial, release, splice } from '@switchyard/tcp';
import { checkTarget, type ForwarderEvent, type ForwarderOptions, ForwarderOptionError, resolveOptions } from './options.js';
import { applyProbe, choosePath, failureText, firstHealth, type PathHealth, type PathKind, type ProbeResult } from './paths.js';
import { probe, reasonOf, type Target } from './probe.js';

export interface PathState {
  readonly kind: PathKind;
  readonly target: Target;
  readonly up: boolean;
  /** The last successful probe's connect latency. */
  readonly latencyMs: number | undefined;
  /** Failed checks in a row. */
  readonly failures: number;
  readonly lastError: string | undefined;
  /** When the path last went up or down (ms since the epoch). */
  readonly since: number;
  /** Connections open over this path now (each stays on the path it started on). */
  readonly connections: number;
}

export interface ForwarderState {
  /** The path new connections take; undefined while none is up (they are closed). */
  readonly current: PathKind | undefined;
  /** In the configured order. */
  readonly paths: readonly PathState[];
}

export interface Forwarder {
  readonly host: string;
  /** The bound port (the one asked for, or the one the system gave for 0). */
  readonly port: number;
  state(): ForwarderState;
  /**
   * The path now leads elsewhere (an SSH reverse tunnel re-established on a new port after a
   * key rotation): new connections over it go to `target`, open ones stay where they are. The
   * path keeps its health and is probed at the new target at once.
   */
  setTarget(kind: PathKind, target: Target): void;
  /**
   * Closes the listener (its port is free when this resolves) and stops probing. Open
   * connections run on until they end, unless `dropConnections`: then they are cut, and this
   * resolves once they have closed.
   */
  stop(opts?: { dropConnections?: boolean }): Promise<void>;
}

interface Path {
  readonly kind: PathKind;
  target: Target;
  health: PathHealth;
  connections: number;
  /** Bumped by setTarget: a probe or dial of the old target no longer speaks for the path. */
  generation: number;
  timer: NodeJS.Timeout | undefined;
}

const noop = (): void => undefined;

/**
 * The edge side of a tunnel: owns the public port and sends each new connection over the
 * best healthy path (`choosePath`), spliced both ways. Every path is probed once before the
 * port opens, so the first connection already has a path, then every `intervalMs`. A failed
 * dial of a new connection counts as a failed check of its path, and the connection tries one
 * other up path (the first in order) before it is closed. Throws a `ForwarderOptionError` for
 * bad options; rejects if the port cannot be bound.
 */
export async function startForwarder(options: ForwarderOptions): Promise<Forwarder> {
  const o = resolveOptions(options);
  const probes = new AbortController();
  let stopped = false;
  // After stop nothing changes that a listener should act on.
  const emit = (event: ForwarderEvent) => {
    if (!stopped) o.onEvent?.(event);
  };

  const firstResults = await Promise.all(o.paths.map((p) => probe(p.target, o.probeTimeoutMs, probes.signal)));
  const paths: Path[] = o.paths.map((p, i) => ({
    kind: p.kind,
    target: p.target,
    health: firstHealth(p.kind, firstResults[i]!, Date.now()),
    connections: 0,
    generation: 0,
    timer: undefined,
  }));
  let current: PathKind | undefined;
  // The first choice is announced even when it is "none", so a listener always learns the start.
  let announced = false;

  const announce = (p: Path) => {
    const { kind, target, health } = p;
    emit(health.up ? { type: 'path-up', kind, target, latencyMs: health.latencyMs } : { type: 'path-down', kind, target, reason: failureText(health) });
  };
  /** The path for the next connection; a change is announced. Cheap: called per connection, so a hold-down ends on time. */
  const choose = (): Path | undefined => {
    const choice = choosePath(
      paths.map((p) => p.health),
      current,
      Date.now(),
      o.holdDownMs,
    );
    if (choice.kind !== current || !announced) {
      announced = true;
      const from = current;
      current = choice.kind;
      emit({ type: 'switch', from, to: current, reason: choice.reason ?? '' });
    }
    return paths.find((p) => p.kind === current);
  };
  const record = (p: Path, result: ProbeResult) => {
    const wasUp = p.health.up;
    p.health = applyProbe(p.health, result, Date.now(), o);
    if (p.health.up !== wasUp) announce(p);
    choose();
  };

  const probeLoop = async (p: Path) => {
    const generation = p.generation;
    const began = performance.now();
    const result = await probe(p.target, o.probeTimeoutMs, probes.signal);
    if (stopped || generation !== p.generation) return;
    record(p, result);
    // onEvent runs inside record and may have stopped the forwarder or retargeted the path
    // (which starts a loop of its own): this loop then ends here, so a path has one loop.
    if (stopped || generation !== p.generation) return;
    p.timer = setTimeout(() => void probeLoop(p), Math.max(0, o.intervalMs - (performance.now() - began)));
  };

  const waiting = new Set<Socket>();
  const open = new Set<{ client: Socket; upstream: Socket }>();

  /** Dials the client's path (and at most one other), then splices; no path, no connection. */
  const forward = async (client: Socket) => {
    const tried = new Set<Path>();
    let path = choose();
    while (path && tried.size < 2) {
      tried.add(path);
      const { target, generation } = path;
      try {
        const upstream = await dial({ host: target.host, port: target.port, timeoutMs: o.probeTimeoutMs });
        if (client.destroyed) return void upstream.destroy();
        return attach(client, upstream, path);
      } catch (err) {
        if (!stopped && generation === path.generation) record(path, { ok: false, reason: reasonOf(err) });
        if (client.destroyed) return;
        path = paths.find((p) => p.health.up && !tried.has(p));
      }
    }
    // FIN, not a reset: the client learns the tunnel has no way through, not that it broke.
    release(client, o.halfCloseMs);
  };
  const attach = (client: Socket, upstream: Socket, path: Path) => {
    const pair = { client, upstream };
    open.add(pair);
    path.connections++;
    splice(client, upstream, {
      halfCloseMs: o.halfCloseMs,
      onClosed: () => {
        open.delete(pair);
        path.connections--;
      },
    });
  };

  // Paused until spliced: what the client sends (its FIN too) waits in the kernel meanwhile.
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => {
    client.on('error', noop);
    waiting.add(client);
    void forward(client).finally(() => waiting.delete(client));
  });
  server.listen({ host: o.host, port: o.port });
  try {
    await once(server, 'listening');
  } catch (err) {
    probes.abort();
    throw err;
  }
  const port = (server.address() as { port: number }).port;
  let closed: Promise<void> | undefined;
  // Announced once the port is ours: a forwarder that failed to start has no paths to report.
  for (const p of paths) announce(p);
  choose();
  for (const p of paths) p.timer = setTimeout(() => void probeLoop(p), o.intervalMs);

  return {
    host: o.host,
    port,
    state: () => ({
      current,
      paths: paths.map((p) => ({
        kind: p.kind,
        target: p.target,
        up: p.health.up,
        latencyMs: p.health.latencyMs,
        failures: p.health.failures,
        lastError: p.health.lastError,
        since: p.health.since,
        connections: p.connections,
      })),
    }),
    setTarget: (kind, target) => {
      const p = paths.find((q) => q.kind === kind);
      if (!p) throw new ForwarderOptionError('kind', `this forwarder has no ${String(kind)} path (it has ${paths.map((q) => q.kind).join(', ')})`);
      checkTarget('target', target);
      p.target = { host: target.host, port: target.port };
      p.generation++;
      if (stopped) return;
      clearTimeout(p.timer);
      p.timer = setTimeout(() => void probeLoop(p), 0);
    },
    stop: async ({ dropConnections = false } = {}) => {
      // A second call may still drop what the first left open.
      if (!stopped) {
        stopped = true;
        probes.abort();
        for (const p of paths) clearTimeout(p.timer);
        // The listening socket closes at once; 'close' waits for every accepted connection.
        closed = new Promise((resolve) => server.once('close', () => resolve()));
        server.close();
      }
      if (!dropConnections) return;
      for (const client of waiting) client.destroy();
      for (const { client, upstream } of open) {
        client.destroy();
        upstream.destroy();
      }
      await closed;
    },
  };
}
