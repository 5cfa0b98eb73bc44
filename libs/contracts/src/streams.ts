import { catalog, isDurable, type Subject } from './catalog.js';
import type { ServiceName } from './services.js';

export interface StreamDef {
  readonly name: string;
  readonly subjects: readonly string[];
  /** workqueue: each message is consumed once and removed on ack; limits: kept until maxAgeMs. */
  readonly retention: 'workqueue' | 'limits';
  readonly maxAgeMs: number;
  /** Window in which a repeated Nats-Msg-Id is dropped as a duplicate. */
  readonly duplicateWindowMs: number;
  readonly description: string;
  /**
   * The one service that may change the stream's configuration (STREAM.UPDATE): it brings the
   * stream to this definition at start. Every other service that writes or reads the stream
   * may only look it up, or create it when it is missing (with this definition: nats-server
   * refuses a create that differs from an existing stream's configuration).
   */
  readonly owner: ServiceName;
}

const DAY = 24 * 3_600_000;
const subjects = Object.keys(catalog) as Subject[];

export const DEAD_LETTER_PREFIX = 'dlq';
/** Where a message that failed validation (or exhausted its deliveries) is parked. */
export function deadLetterSubject(original: string): string {
  return `${DEAD_LETTER_PREFIX}.${original}`;
}

function commandsFor(service: ServiceName): Subject[] {
  return subjects.filter((s) => {
    const def = catalog[s];
    return def.type === 'command' && def.consumer === service;
  });
}

/**
 * Each service's commands get a work-queue stream of their own: the Debian NATS server
 * (2.9) allows one filter subject per consumer, and a service's commands span domains
 * (pool.cmd.*, node.cmd.*), so the consumer reads its whole stream unfiltered instead.
 */
function commandStream(service: ServiceName, name: string): StreamDef {
  return {
    name,
    subjects: commandsFor(service),
    retention: 'workqueue',
    maxAgeMs: 7 * DAY,
    duplicateWindowMs: 10 * 60_000,
    description: `commands carried out by ${service}`,
    owner: service,
  };
}

export const STREAMS = {
  CMD_EXIT_NODE_MANAGER: commandStream('exit-node-manager', 'CMD_EXIT_NODE_MANAGER'),
  CMD_SLEEP_CONTROLLER: commandStream('sleep-controller', 'CMD_SLEEP_CONTROLLER'),
  CMD_TUNNEL_MANAGER: commandStream('tunnel-manager', 'CMD_TUNNEL_MANAGER'),
  CMD_STORAGE_SYNC: commandStream('storage-sync', 'CMD_STORAGE_SYNC'),
  EVT: {
    name: 'EVT',
    subjects: subjects.filter((s) => catalog[s].type === 'event' && isDurable(s)),
    retention: 'limits',
    maxAgeMs: 7 * DAY,
    duplicateWindowMs: 10 * 60_000,
    description: 'durable events: any number of consumers',
    // The gateway reads the most of it (orders, activity, speed tests).
    owner: 'api-gateway',
  },
  DLQ: {
    name: 'DLQ',
    subjects: [`${DEAD_LETTER_PREFIX}.>`],
    retention: 'limits',
    maxAgeMs: 30 * DAY,
    duplicateWindowMs: 60_000,
    description: 'messages rejected by a consumer, with the reason in headers',
    owner: 'api-gateway',
  },
} as const satisfies Record<string, StreamDef>;
export type StreamName = keyof typeof STREAMS;

export interface ConsumerDef {
  readonly durable: string;
  readonly stream: StreamName;
  readonly service: ServiceName;
  /** Everything the consumer handles; a handler is required for each. */
  readonly subjects: readonly Subject[];
  /** The one server-side filter subject (wildcards allowed); none reads the whole stream. */
  readonly filter?: string;
  /**
   * How long an unacknowledged message waits before redelivery: after a crash, that is how
   * long the work waits. Handlers that run longer keep it alive with progress heartbeats.
   */
  readonly ackWaitMs: number;
  /**
   * After this many deliveries a message goes to the dead-letter subject. With the bus's
   * redelivery backoff, 12 deliveries span about 6 minutes: an outage is waited out.
   */
  readonly maxDeliver: number;
  readonly maxAckPending: number;
}

/** Durable JetStream consumers, one per (service, purpose). */
export const CONSUMERS = {
  exitNodeManagerCommands: {
    durable: 'exit-node-manager-commands',
    stream: 'CMD_EXIT_NODE_MANAGER',
    service: 'exit-node-manager',
    subjects: ['node.cmd.add', 'pool.cmd.create', 'pool.cmd.scale', 'pool.cmd.delete', 'node.cmd.start', 'node.cmd.stop', 'node.cmd.restart', 'node.cmd.sleep', 'node.cmd.wake'],
    ackWaitMs: 10_000,
    maxDeliver: 12,
    maxAckPending: 64,
  },
  apiGatewayOrders: {
    durable: 'api-gateway-orders',
    stream: 'EVT',
    service: 'api-gateway',
    subjects: ['order.evt.progress', 'order.evt.fulfilled', 'order.evt.failed'],
    filter: 'order.evt.>',
    ackWaitMs: 10_000,
    maxDeliver: 12,
    maxAckPending: 256,
  },
  sleepControllerCommands: {
    durable: 'sleep-controller-commands',
    stream: 'CMD_SLEEP_CONTROLLER',
    service: 'sleep-controller',
    subjects: ['sleep.cmd.policy', 'sleep.cmd.node'],
    // A manual sleep waits for the activator's arm reply before it stops the node.
    ackWaitMs: 15_000,
    maxDeliver: 12,
    maxAckPending: 64,
  },
  tunnelManagerCommands: {
    durable: 'tunnel-manager-commands',
    stream: 'CMD_TUNNEL_MANAGER',
    service: 'tunnel-manager',
    subjects: ['tunnel.cmd.open', 'tunnel.cmd.close', 'tunnel.cmd.rotate'],
    // Opening starts the forwarder and waits for the first probe of each path.
    ackWaitMs: 15_000,
    maxDeliver: 12,
    maxAckPending: 64,
  },
  // The activity timeline: one consumer per domain, as NATS 2.9 allows one filter each.
  apiGatewayActivitySleep: {
    durable: 'api-gateway-activity-sleep',
    stream: 'EVT',
    service: 'api-gateway',
    subjects: ['sleep.evt.slept', 'sleep.evt.policy'],
    filter: 'sleep.evt.>',
    ackWaitMs: 10_000,
    maxDeliver: 12,
    maxAckPending: 256,
  },
  apiGatewayActivityActivator: {
    durable: 'api-gateway-activity-activator',
    stream: 'EVT',
    service: 'api-gateway',
    subjects: ['activator.evt.woke', 'activator.evt.failed'],
    filter: 'activator.evt.>',
    ackWaitMs: 10_000,
    maxDeliver: 12,
    maxAckPending: 256,
  },
  apiGatewayActivityNodes: {
    durable: 'api-gateway-activity-nodes',
    stream: 'EVT',
    service: 'api-gateway',
    subjects: ['node.evt.created', 'node.evt.started', 'node.evt.stopped', 'node.evt.died', 'node.evt.removed', 'node.evt.draining', 'node.evt.health'],
    filter: 'node.evt.>',
    ackWaitMs: 10_000,
    maxDeliver: 12,
    maxAckPending: 256,
  },
  apiGatewayActivityTunnels: {
    durable: 'api-gateway-activity-tunnels',
    stream: 'EVT',
    service: 'api-gateway',
    subjects: ['tunnel.evt.opened', 'tunnel.evt.closed', 'tunnel.evt.up', 'tunnel.evt.down', 'tunnel.evt.failover', 'tunnel.evt.rotated', 'tunnel.evt.expired'],
    filter: 'tunnel.evt.>',
    ackWaitMs: 10_000,
    maxDeliver: 12,
    maxAckPending: 256,
  },
  apiGatewaySpeedTests: {
    durable: 'api-gateway-speedtests',
    stream: 'EVT',
    service: 'api-gateway',
    subjects: ['health.evt.speedtest'],
    filter: 'health.evt.speedtest',
    ackWaitMs: 10_000,
    maxDeliver: 12,
    maxAckPending: 256,
  },
} as const satisfies Record<string, ConsumerDef>;
export type ConsumerName = keyof typeof CONSUMERS;
