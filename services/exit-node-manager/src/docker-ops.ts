import { setTimeout as sleep } from 'node:timers/promises';
import { SpanKind, type Attributes } from '@opentelemetry/api';
import type { ContainerCreateOptions, NetworkCreateOptions } from 'dockerode';
import { ensureImagePresent, isAlreadyDone, isConflict, isNotFound, labelFilters, Labels, type Docker } from '@switchyard/docker';
import { withSpan } from '@switchyard/telemetry';
import type { PortBindings } from './container-spec.js';

/**
 * A Docker call failed. Handlers turn it into a failed order (the message is meant for the
 * person who placed it) instead of retrying: the engine said no, and asking again will not help.
 */
export class DockerOpError extends Error {
  override name = 'DockerOpError';
  constructor(
    readonly operation: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
  /** The engine answered 409: a name is taken or the object is in the wrong state. */
  get conflict(): boolean {
    return isConflict(this.cause);
  }
  /**
   * The engine was not reached, or failed on its side (5xx): unlike a refusal, the same call
   * may well succeed later.
   */
  get transient(): boolean {
    const cause = this.cause as { code?: unknown; statusCode?: unknown } | null | undefined;
    if (typeof cause?.code === 'string' && UNREACHABLE.has(cause.code)) return true;
    return typeof cause?.statusCode === 'number' && cause.statusCode >= 500;
  }
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOENT', 'EACCES', 'EPIPE', 'ETIMEDOUT']);

export interface ContainerRef {
  readonly id: string;
  readonly running: boolean;
  readonly labels: Readonly<Record<string, string>>;
  /** HostConfig.NetworkMode: "host", a network's name, or "default" (Docker's bridge). */
  readonly networkMode?: string;
}

export interface ContainerState {
  readonly id: string;
  readonly running: boolean;
  /** created, running, exited, … as Docker reports it. */
  readonly status: string;
  readonly exitCode: number;
  readonly oomKilled: boolean;
  readonly startedAt: Date | null;
  readonly finishedAt: Date | null;
  readonly ports: PortBindings;
  /** The container has a HEALTHCHECK (its image's or its own). */
  readonly healthcheck: boolean;
}

interface StartResult {
  readonly state: ContainerState;
  /** From the start call until inspect reports the container running. */
  readonly startMs: number;
}

export interface DockerOps {
  ping(): Promise<void>;
  ensureImage(image: string): Promise<void>;
  /** Managed containers (any state) carrying every given label. */
  findContainers(labels: Record<string, string>): Promise<ContainerRef[]>;
  create(options: ContainerCreateOptions, attrs?: Attributes): Promise<string>;
  /** Starts the container and waits until it runs; fails if it exits instead. */
  start(id: string, attrs?: Attributes): Promise<StartResult>;
  /** No-op when already stopped. */
  stop(id: string, attrs?: Attributes): Promise<void>;
  /** Force-removes; no-op when already gone. */
  remove(id: string, attrs?: Attributes): Promise<void>;
  inspect(id: string, attrs?: Attributes): Promise<ContainerState>;
  /** The last `tail` lines of both streams, still in Docker's multiplexed frames. */
  logs(id: string, tail: number, attrs?: Attributes): Promise<Buffer>;
  /**
   * Creates the network unless it exists. One of that name that lacks the spec's labels is
   * refused, not used: containers would join a network someone else made.
   */
  ensureNetwork(options: NetworkCreateOptions): Promise<void>;
  /** No-op when already gone. */
  removeNetwork(name: string): Promise<void>;
  /** Names of the volumes carrying every given label. */
  findVolumes(labels: Record<string, string>): Promise<string[]>;
  /** No-op when already gone. */
  removeVolume(name: string): Promise<void>;
}

export interface DockerOpsOptions {
  /** Grace period of a stop before Docker kills the container. */
  stopTimeoutSec?: number;
  /** How long a started container may take to report running. */
  runningTimeoutMs?: number;
}

const POLL_MS = 25;

// Zero dates ("0001-01-01T00:00:00Z") mean "never".
function dateOf(value: string | undefined): Date | null {
  if (!value || value.startsWith('0001-')) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d;
}

function describe(operation: string, err: unknown): string {
  const raw = err instanceof Error ? err.message : String(err);
  // dockerode: "(HTTP code 404) no such container - No such container: abc "
  const message = raw.replace(/^\(HTTP code \d+\)\s*[^-]*-\s*/, '').trim() || raw.trim();
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'ECONNREFUSED' || code === 'ENOENT' || code === 'EACCES') {
    return `the Docker engine is not reachable (${message}); is dockerd running and DOCKER_HOST right?`;
  }
  return `docker ${operation} failed: ${message}`;
}

// ["NONE"] switches an image's check off; an empty test inherits none.
function hasHealthcheck(test: string[] | undefined): boolean {
  return !!test && test.length > 0 && test[0] !== 'NONE';
}

export function createDockerOps(docker: Docker, opts: DockerOpsOptions = {}): DockerOps {
  const stopTimeoutSec = opts.stopTimeoutSec ?? 10;
  const runningTimeoutMs = opts.runningTimeoutMs ?? 10_000;

  // Every engine call is a CLIENT span under the active (consumer) span, and every failure a
  // DockerOpError, so callers can tell the engine's refusals from their own database's.
  function call<T>(operation: string, attrs: Attributes, fn: () => Promise<T>): Promise<T> {
    return withSpan(`docker ${operation}`, { kind: SpanKind.CLIENT, attributes: { 'docker.operation': operation, ...attrs } }, async () => {
      try {
        return await fn();
      } catch (err) {
        if (err instanceof DockerOpError) throw err;
        throw new DockerOpError(operation, describe(operation, err), { cause: err });
      }
    });
  }

  async function inspectRaw(id: string, attrs: Attributes): Promise<ContainerState> {
    return call('container.inspect', { 'container.id': id, ...attrs }, async () => {
      const info = await docker.getContainer(id).inspect();
      return {
        id: info.Id,
        running: info.State.Running,
        status: info.State.Status,
        exitCode: info.State.ExitCode,
        oomKilled: info.State.OOMKilled ?? false,
        startedAt: dateOf(info.State.StartedAt),
        finishedAt: dateOf(info.State.FinishedAt),
        ports: (info.NetworkSettings?.Ports ?? {}) as PortBindings,
        healthcheck: hasHealthcheck(info.Config?.Healthcheck?.Test),
      };
    });
  }

  return {
    async ping() {
      await call('ping', {}, () => docker.ping());
    },

    async ensureImage(image) {
      await call('image.inspect', { 'container.image.name': image }, async () => {
        try {
          await ensureImagePresent(docker, image);
        } catch (err) {
          // Its message already says what to do; keep it whole.
          if (isNotFound((err as Error).cause)) throw new DockerOpError('image.inspect', (err as Error).message, { cause: err });
          throw err;
        }
      });
    },

    async findContainers(labels) {
      const filters = labelFilters({ [Labels.managed]: 'true', ...labels });
      return call('container.list', { 'docker.filters': filters.label.join(',') }, async () => {
        const list = await docker.listContainers({ all: true, filters });
        return list.map((c) => ({ id: c.Id, running: c.State === 'running', labels: c.Labels ?? {}, networkMode: c.HostConfig?.NetworkMode }));
      });
    },

    async create(options, attrs = {}) {
      const spanAttrs = { 'container.name': options.name ?? '', 'container.image.name': options.Image ?? '', ...attrs };
      return call('container.create', spanAttrs, async () => (await docker.createContainer(options)).id);
    },

    async start(id, attrs = {}) {
      const t0 = performance.now();
      await call('container.start', { 'container.id': id, ...attrs }, async () => {
        try {
          await docker.getContainer(id).start();
        } catch (err) {
          if (!isAlreadyDone(err)) throw err;
        }
      });
      const deadline = t0 + runningTimeoutMs;
      for (;;) {
        const state = await inspectRaw(id, attrs);
        if (state.running) return { state, startMs: Math.round(performance.now() - t0) };
        if (state.status === 'exited' || state.status === 'dead') {
          throw new DockerOpError('container.start', `the container exited right after it started (exit code ${state.exitCode}); see \`docker logs ${id.slice(0, 12)}\``);
        }
        if (performance.now() > deadline) {
          throw new DockerOpError('container.start', `the container was not running ${runningTimeoutMs} ms after start (state ${state.status})`);
        }
        await sleep(POLL_MS);
      }
    },

    async stop(id, attrs = {}) {
      await call('container.stop', { 'container.id': id, 'docker.stop_timeout_s': stopTimeoutSec, ...attrs }, async () => {
        try {
          await docker.getContainer(id).stop({ t: stopTimeoutSec });
        } catch (err) {
          if (!isAlreadyDone(err)) throw err;
        }
      });
    },

    async remove(id, attrs = {}) {
      await call('container.remove', { 'container.id': id, ...attrs }, async () => {
        try {
          await docker.getContainer(id).remove({ force: true });
        } catch (err) {
          // 409 "removal already in progress" ends in the same place.
          if (!isNotFound(err) && !isConflict(err)) throw err;
        }
      });
    },

    inspect: (id, attrs = {}) => inspectRaw(id, attrs),

    async ensureNetwork(options) {
      const name = options.Name;
      await call('network.create', { 'docker.network.name': name }, async () => {
        const owned = (labels: Record<string, string> | undefined) => Object.entries(options.Labels ?? {}).every(([k, v]) => labels?.[k] === v);
        const inspect = async () => (await docker.getNetwork(name).inspect()) as { Labels?: Record<string, string> };
        let existing: { Labels?: Record<string, string> } | undefined;
        try {
          existing = await inspect();
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
        if (!existing) {
          try {
            await docker.createNetwork(options);
            return;
          } catch (err) {
            // Made by a concurrent call in between: check it as any existing one.
            if (!isConflict(err)) throw err;
            existing = await inspect();
          }
        }
        if (!owned(existing.Labels))
          throw new DockerOpError('network.create', `the network "${name}" exists but was not made by Switchyard for this tenant; remove it (docker network rm) and retry`);
      });
    },

    async removeNetwork(name) {
      await call('network.remove', { 'docker.network.name': name }, async () => {
        try {
          await docker.getNetwork(name).remove();
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
      });
    },

    async findVolumes(labels) {
      const filters = labelFilters({ [Labels.managed]: 'true', ...labels });
      return call('volume.list', { 'docker.filters': filters.label.join(',') }, async () => {
        const list = await docker.listVolumes({ filters });
        return (list.Volumes ?? []).map((v) => v.Name);
      });
    },

    async removeVolume(name) {
      await call('volume.remove', { 'docker.volume.name': name }, async () => {
        try {
          await docker.getVolume(name).remove();
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
      });
    },

    async logs(id, tail, attrs = {}) {
      return call('container.logs', { 'container.id': id, ...attrs }, async () => {
        const body: unknown = await docker.getContainer(id).logs({ stdout: true, stderr: true, tail, follow: false });
        return Buffer.isBuffer(body) ? body : Buffer.from(String(body));
      });
    },
  };
}
