import closeWithGrace from 'close-with-grace';
import { AuthorizationError, connect, type NatsConnection } from '@nats-io/transport-node';
import { Svcm, type Service } from '@nats-io/services';
import { Redis } from 'ioredis';
import { pino, type Logger } from 'pino';
import type { Static, TObject } from 'typebox';
import { createBus, type Backoff, type Bus, type ConsumerHandlers, type Consumption } from '@switchyard/bus';
import { ConfigError, loadConfigOrExit, redactUrl } from '@switchyard/config';
import type { ConsumerName, EventSubject, Payload, ServiceName } from '@switchyard/contracts';
import { startTelemetry, type Telemetry } from '@switchyard/telemetry';
import { natsIdentity, type NatsIdentity } from './nats-identity.js';
import { REBUILD_RETRY, Resync } from './resync.js';

/** The variables every service reads; a service's own schema spreads CommonEnv into it. */
interface KitEnv {
  NATS_URL: string;
  REDIS_URL: string;
  LOG_LEVEL: string;
  SHUTDOWN_TIMEOUT_MS: number;
  OTEL_EXPORTER_OTLP_ENDPOINT?: string | undefined;
  NATS_NKEY_SEED_FILE?: string | undefined;
  NATS_NKEY_SEED?: string | undefined;
}

// 78 is EX_CONFIG from sysexits.h, as loadConfigOrExit exits: "fix the config", not a crash.
const EX_CONFIG = 78;

function identityOrExit(name: ServiceName, config: KitEnv): NatsIdentity {
  try {
    return natsIdentity(name, config);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${name}: invalid configuration\n  ${err.message}\n`);
    return process.exit(EX_CONFIG);
  }
}

/** Core NATS event handlers by subject: what a service hears without a durable consumer. */
export type EventHandlers = { [S in EventSubject]?: (payload: Payload<S>) => Promise<void> };

/** Durable JetStream consumers by name: their handler maps and how many messages each handles at once. */
export type ConsumerMap = { [C in ConsumerName]?: { handlers: ConsumerHandlers<C>; concurrency?: number } };

export interface FollowOptions {
  /** Names the cache in logs ("routing table", "pools and nodes"). */
  readonly what: string;
  /** Subscribed before the first rebuild, so nothing that happens while it travels is lost. */
  readonly events: EventHandlers;
  /** Replaces the cache from the owners' snapshots; throws when it could not. */
  readonly rebuild: () => Promise<void>;
  /** Rebuild this often anyway (missed core events); omitted, only at start and on reconnect. */
  readonly periodMs?: number;
  /** Backoff of a failed rebuild's retry; REBUILD_RETRY (0.25 s doubling to 1 s) unless said. */
  readonly retry?: Backoff;
  /** Queue group of the event subscriptions (several processes sharing the work). */
  readonly queue?: string;
}

export interface ServiceContext<C> {
  readonly name: ServiceName;
  readonly config: C;
  readonly log: Logger;
  readonly nc: NatsConnection;
  readonly bus: Bus;
  /** False between a lost NATS connection and its reconnection. */
  natsConnected(): boolean;
  /** This process's NATS micro service: add request/reply endpoints with `bus.serve`. */
  readonly service: Service;
  readonly telemetry: Telemetry;
  /** Present when the service asked for it with `redis: true`. */
  readonly redis: Redis | undefined;
  /** Registers a step of the shutdown; steps run in reverse order of registration. */
  onShutdown(step: () => Promise<unknown>): void;
  /**
   * Stops the consumption on shutdown, and ends the process if it dies on its own: a service
   * that is up but deaf is worse than one a supervisor restarts.
   */
  supervise(what: string, consumption: Consumption): void;
  /** Subscribes each subject of the map to its handler, supervised (see `supervise`). */
  subscribe(handlers: EventHandlers, opts?: { queue?: string }): void;
  /** Starts each durable consumer of the map, supervised (see `supervise`). */
  consume(consumers: ConsumerMap): void;
  /**
   * Snapshot following, the one way a service keeps a cache of state another service owns:
   * subscribe to the events, rebuild from snapshots at once, every `periodMs`, after every
   * NATS reconnect, and again with backoff after a failed rebuild. `settled()` of the result
   * resolves once the first rebuild was tried; the rebuilds stop on shutdown.
   */
  follow(opts: FollowOptions): Resync;
}

export interface ServiceDefinition<S extends TObject> {
  readonly name: ServiceName;
  readonly version?: string;
  readonly description: string;
  readonly env: S;
  readonly redis?: boolean;
  /**
   * For the worker processes of a multi-process service: they skip the "ready" line so the
   * service logs it once, from the process that knows every worker is up.
   */
  readonly quietReady?: boolean;
  /** Wires handlers and returns once the service is ready to work. */
  start(ctx: ServiceContext<Static<S>>): Promise<void>;
}

export interface RunningService<C> {
  readonly ctx: ServiceContext<C>;
  /** The same shutdown a SIGTERM starts; resolves when everything is closed. */
  stop(): Promise<void>;
}

/**
 * One way every service starts: config → telemetry → NATS (+ JetStream topology) →
 * redis if asked → the service's own start → registration with the NATS Services API.
 * SIGTERM/SIGINT drain in reverse and exit within SHUTDOWN_TIMEOUT_MS.
 */
export async function runService<S extends TObject>(def: ServiceDefinition<S>): Promise<RunningService<Static<S>>> {
  const config = loadConfigOrExit(def.name, def.env) as Static<S> & KitEnv;
  const log = pino({ name: def.name, level: config.LOG_LEVEL });
  const telemetry = startTelemetry({ serviceName: def.name, otlpEndpoint: config.OTEL_EXPORTER_OTLP_ENDPOINT });
  const steps: Array<() => Promise<unknown>> = [async () => telemetry.shutdown()];

  const identity = identityOrExit(def.name, config);
  // The public key only: it names the identity in the server's configuration and logs.
  log.info({ nats: redactUrl(config.NATS_URL), identity: identity.publicKey ?? 'none' }, 'connecting to NATS');
  if (!identity.publicKey) log.warn('no NATS identity (NATS_NKEY_SEED_FILE or NATS_NKEY_SEED): connecting without credentials');
  // Wait for NATS rather than crash-looping when the service starts before the broker. A
  // refused identity is not waited out: the client gives up on the second refusal.
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: config.NATS_URL,
      name: def.name,
      waitOnFirstConnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
      ...identity.options,
    });
  } catch (err) {
    if (!(err instanceof AuthorizationError)) throw err;
    log.error({ identity: identity.publicKey ?? 'none', err: err.message }, 'NATS refused this identity: is its public key in the server configuration?');
    return process.exit(EX_CONFIG);
  }
  steps.push(async () => nc.drain());
  let natsConnected = true;
  const reconnectListeners: Array<() => void> = [];
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') natsConnected = false;
      if (s.type === 'reconnect') natsConnected = true;
      if (s.type === 'disconnect' || s.type === 'reconnect') log.warn({ status: s.type }, 'NATS connection');
      if (s.type === 'reconnect') for (const listener of reconnectListeners) listener();
    }
  })();

  const bus = createBus(nc, def.name, { log });
  await bus.ensureTopology();

  let redis: Redis | undefined;
  if (def.redis) {
    redis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: 2, enableOfflineQueue: true, lazyConnect: false });
    redis.on('error', (err) => log.warn({ err: err.message }, 'redis'));
    const r = redis;
    steps.push(async () => r.quit());
  }

  const service = await new Svcm(nc).add({
    name: def.name,
    version: def.version ?? '0.1.0',
    description: def.description,
  });
  steps.push(async () => service.stop());

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      log.info('shutting down');
      for (const step of steps.slice().reverse()) {
        try {
          await step();
        } catch (err) {
          log.warn({ err: (err as Error).message }, 'shutdown step failed');
        }
      }
    })();
    return stopping;
  };

  function supervise(what: string, consumption: Consumption) {
    steps.push(() => consumption.stop());
    consumption.done.catch((err: unknown) => {
      log.error({ err, what }, 'consumer stopped');
      // Rethrown outside the promise so close-with-grace drains and exits non-zero.
      queueMicrotask(() => {
        throw err;
      });
    });
  }

  function subscribe(handlers: EventHandlers, opts: { queue?: string } = {}) {
    for (const [subject, handler] of Object.entries(handlers) as Array<[EventSubject, (p: Payload<EventSubject>) => Promise<void>]>) {
      supervise(subject, bus.subscribe(subject, handler, opts));
    }
  }

  function consume(consumers: ConsumerMap) {
    for (const [name, c] of Object.entries(consumers) as Array<[ConsumerName, { handlers: ConsumerHandlers<ConsumerName>; concurrency?: number }]>) {
      supervise(name, bus.consume(name, c.handlers, c.concurrency ? { concurrency: c.concurrency } : {}));
    }
  }

  function follow(opts: FollowOptions): Resync {
    subscribe(opts.events, opts.queue ? { queue: opts.queue } : {});
    const resync = new Resync(opts.rebuild, {
      ...(opts.periodMs !== undefined ? { periodMs: opts.periodMs } : {}),
      retry: opts.retry ?? REBUILD_RETRY,
      // Once a second while the owner is away: warn once, then keep the rest for debug.
      onError: (err, failures) =>
        failures === 1 ? log.warn({ err }, `could not rebuild the ${opts.what}; retrying`) : log.debug({ err, failures }, `could not rebuild the ${opts.what}`),
    });
    steps.push(() => resync.stop());
    reconnectListeners.push(() => resync.request());
    resync.request();
    return resync;
  }

  const ctx: ServiceContext<Static<S>> = {
    name: def.name,
    config,
    log,
    nc,
    bus,
    natsConnected: () => natsConnected,
    service,
    telemetry,
    redis,
    onShutdown: (step) => steps.push(step),
    supervise,
    subscribe,
    consume,
    follow,
  };

  closeWithGrace({ delay: config.SHUTDOWN_TIMEOUT_MS, logger: { error: (m: unknown) => log.error(m) } }, async ({ err, signal }) => {
    if (err) log.error({ err }, 'fatal error');
    else log.info({ signal }, 'signal received');
    await stop();
  });

  await def.start(ctx);
  if (def.quietReady) log.debug({ service: def.name, id: service.info().id }, 'worker ready');
  else log.info({ service: def.name, id: service.info().id }, 'ready');
  return { ctx, stop };
}
