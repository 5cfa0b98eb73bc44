import { setTimeout as sleep } from 'node:timers/promises';
import { labelFilters, Labels, type Docker } from '@switchyard/docker';
import { backoffDelay, type Backoff } from '@switchyard/service-kit';
import { onJsonLines } from './json-lines.js';

/** A Docker event of a managed container that this manager acts on. */
export interface ContainerEvent {
  readonly action: 'start' | 'die' | 'oom' | 'health_status' | 'destroy';
  readonly containerId: string;
  readonly labels: Readonly<Record<string, string>>;
  /** die only. */
  readonly exitCode?: number;
  /** health_status only. */
  readonly health?: 'healthy' | 'unhealthy' | 'starting';
  /** When Docker saw it, in nanoseconds since the epoch (unique enough for de-duplication). */
  readonly timeNano: string;
}

const HEALTH = new Set(['healthy', 'unhealthy', 'starting']);

/** One line of the events stream; null for what the manager ignores. */
export function parseEvent(raw: unknown): ContainerEvent | null {
  const e = raw as { Type?: string; Action?: string; Actor?: { ID?: string; Attributes?: Record<string, string> }; id?: string; timeNano?: number | string; time?: number } | null;
  if (e?.Type !== 'container' || typeof e.Action !== 'string') return null;
  const containerId = e.Actor?.ID ?? e.id;
  if (!containerId) return null;
  const attrs = e.Actor?.Attributes ?? {};
  const timeNano = String(e.timeNano ?? (e.time ?? 0) * 1e9);
  // "health_status: healthy": the state is part of the action.
  const [verb, detail] = e.Action.split(':').map((p) => p.trim());
  switch (verb) {
    case 'start':
    case 'oom':
    case 'destroy':
      return { action: verb, containerId, labels: attrs, timeNano };
    case 'die': {
      const exitCode = Number(attrs['exitCode'] ?? 0);
      return { action: 'die', containerId, labels: attrs, exitCode: Number.isInteger(exitCode) ? exitCode : -1, timeNano };
    }
    case 'health_status':
      if (!detail || !HEALTH.has(detail)) return null;
      return { action: 'health_status', containerId, labels: attrs, health: detail as ContainerEvent['health'] & string, timeNano };
    default:
      return null;
  }
}

export interface EventWatchOptions {
  onEvent(event: ContainerEvent): void;
  /**
   * Called each time the stream is (re)established, after it is open: whatever happened while
   * it was down is only found by looking, and nothing from now on is missed.
   */
  onConnect(): void;
  onDisconnect(reason: string): void;
}

export interface EventWatch {
  stop(): Promise<void>;
}

/** Reconnects of a lost stream: soon, then less often; afresh after each connection. */
const RECONNECT_BACKOFF: Backoff = { initialMs: 100, maxMs: 2_000 };

/** Follows the engine's event stream for managed containers, reconnecting for as long as it runs. */
export function watchDockerEvents(docker: Docker, opts: EventWatchOptions): EventWatch {
  let stopped = false;
  let current: (NodeJS.ReadableStream & { destroy?: () => void }) | undefined;
  const filters = { type: ['container' as const], ...labelFilters({ [Labels.managed]: 'true' }) };

  async function follow(stream: NodeJS.ReadableStream): Promise<string> {
    return new Promise((resolve) => {
      // A malformed line is one lost event, which the next reconciliation catches.
      onJsonLines(stream, (raw) => {
        const event = parseEvent(raw);
        if (event) opts.onEvent(event);
      });
      stream.once('end', () => resolve('the engine ended the event stream'));
      stream.once('close', () => resolve('the event stream closed'));
      stream.once('error', (err: Error) => resolve(err.message));
    });
  }

  const loop = (async () => {
    let failures = 0;
    while (!stopped) {
      let reason: string;
      try {
        const stream: NodeJS.ReadableStream = await docker.getEvents({ filters });
        current = stream;
        if (stopped) {
          (stream as { destroy?: () => void }).destroy?.();
          break;
        }
        failures = 0;
        const ended = follow(stream);
        opts.onConnect();
        reason = await ended;
      } catch (err) {
        reason = (err as Error).message;
      }
      current = undefined;
      if (stopped) break;
      opts.onDisconnect(reason);
      failures++;
      await sleep(backoffDelay(RECONNECT_BACKOFF, failures));
    }
  })();

  return {
    async stop() {
      stopped = true;
      current?.destroy?.();
      await loop;
    },
  };
}
