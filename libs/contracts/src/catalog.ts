import type { Static, TSchema } from 'typebox';
import * as M from './messages.js';
import type { ServiceName } from './services.js';

interface CommandDef<S extends TSchema> {
  readonly type: 'command';
  readonly schema: S;
  readonly consumer: ServiceName;
  readonly producers: readonly ServiceName[];
  readonly summary: string;
}
interface EventDef<S extends TSchema> {
  readonly type: 'event';
  readonly schema: S;
  /** Durable events are stored in the EVT stream; others are core NATS, lossy by design. */
  readonly durable: boolean;
  readonly producers: readonly ServiceName[];
  readonly consumers: readonly ServiceName[];
  readonly summary: string;
}
interface RequestDef<S extends TSchema, R extends TSchema> {
  readonly type: 'request';
  readonly schema: S;
  readonly reply: R;
  readonly responder: ServiceName;
  readonly requesters: readonly ServiceName[];
  readonly summary: string;
}

const command = <S extends TSchema>(d: Omit<CommandDef<S>, 'type'>): CommandDef<S> => ({ type: 'command', ...d });
const event = <S extends TSchema>(d: Omit<EventDef<S>, 'type'>): EventDef<S> => ({ type: 'event', ...d });
const request = <S extends TSchema, R extends TSchema>(d: Omit<RequestDef<S, R>, 'type'>): RequestDef<S, R> => ({
  type: 'request',
  ...d,
});

/**
 * Every NATS subject of the system and the one schema of its payload. Subjects follow
 * `<domain>.<cmd|evt|req>.<verb>`. Nothing outside this table defines a message.
 */
export const catalog = {
  // pools and nodes: exit-node-manager owns containers
  'pool.cmd.create': command({
    schema: M.PoolCreate,
    consumer: 'exit-node-manager',
    producers: ['api-gateway'],
    summary: 'create a pool and start its minimum number of nodes',
  }),
  'pool.cmd.scale': command({
    schema: M.PoolScale,
    consumer: 'exit-node-manager',
    producers: ['api-gateway'],
    summary: 'change the node count of a pool',
  }),
  'pool.cmd.delete': command({
    schema: M.PoolDelete,
    consumer: 'exit-node-manager',
    producers: ['api-gateway'],
    summary: 'remove a pool and all its nodes',
  }),
  'node.cmd.add': command({
    schema: M.NodeAdd,
    consumer: 'exit-node-manager',
    producers: ['api-gateway'],
    summary: "add a node with a given id to the tenant's exit pool of a country",
  }),
  'node.cmd.start': command({
    schema: M.NodeCommand,
    consumer: 'exit-node-manager',
    producers: ['api-gateway'],
    summary: 'start a stopped node',
  }),
  'node.cmd.stop': command({
    schema: M.NodeCommand,
    consumer: 'exit-node-manager',
    producers: ['api-gateway'],
    summary: 'stop a node (the container is kept)',
  }),
  'node.cmd.restart': command({
    schema: M.NodeCommand,
    consumer: 'exit-node-manager',
    producers: ['api-gateway'],
    summary: 'restart a node',
  }),
  'node.cmd.sleep': command({
    schema: M.NodeCommand,
    consumer: 'exit-node-manager',
    producers: ['sleep-controller'],
    summary: 'stop a node whose ports the activator now catches (the container is kept)',
  }),
  'node.cmd.wake': command({
    schema: M.NodeCommand,
    consumer: 'exit-node-manager',
    producers: ['socket-activator', 'api-gateway'],
    summary: 'start a sleeping node',
  }),
  'sleep.cmd.policy': command({
    schema: M.SleepPolicySet,
    consumer: 'sleep-controller',
    producers: ['api-gateway'],
    summary: 'set the sleep policy of a pool, live',
  }),
  'sleep.cmd.node': command({
    schema: M.NodeCommand,
    consumer: 'sleep-controller',
    producers: ['api-gateway'],
    summary: 'put a node to sleep now: arm its catch, then stop it',
  }),
  'tunnel.cmd.open': command({
    schema: M.TunnelOpen,
    consumer: 'tunnel-manager',
    producers: ['api-gateway'],
    summary: 'open a tunnel to a node port over its paths',
  }),
  'tunnel.cmd.close': command({
    schema: M.TunnelRef,
    consumer: 'tunnel-manager',
    producers: ['api-gateway'],
    summary: 'close a tunnel',
  }),
  'tunnel.cmd.rotate': command({
    schema: M.TunnelRef,
    consumer: 'tunnel-manager',
    producers: ['api-gateway'],
    summary: 'rotate the keys and tokens of a tunnel',
  }),
  'sync.cmd.schedule': command({
    schema: M.SyncJobSchedule,
    consumer: 'storage-sync',
    producers: ['api-gateway'],
    summary: 'create or replace a sync job',
  }),
  'sync.cmd.run': command({
    schema: M.SyncJobRef,
    consumer: 'storage-sync',
    producers: ['api-gateway'],
    summary: 'run a sync job now',
  }),
  'sync.cmd.restore': command({
    schema: M.SyncJobRef,
    consumer: 'storage-sync',
    producers: ['api-gateway'],
    summary: 'restore a sync job from its remote',
  }),

  'order.evt.progress': event({
    schema: M.OrderProgress,
    durable: true,
    producers: ['exit-node-manager', 'tunnel-manager', 'storage-sync'],
    consumers: ['api-gateway'],
    summary: 'an order is being carried out',
  }),
  'order.evt.fulfilled': event({
    schema: M.OrderFulfilled,
    durable: true,
    producers: ['exit-node-manager', 'sleep-controller', 'tunnel-manager', 'storage-sync'],
    consumers: ['api-gateway', 'socket-activator'],
    summary: 'an order was carried out',
  }),
  'order.evt.failed': event({
    schema: M.OrderFailed,
    durable: true,
    producers: ['exit-node-manager', 'sleep-controller', 'tunnel-manager', 'storage-sync'],
    consumers: ['api-gateway', 'socket-activator'],
    summary: 'an order could not be carried out, with the reason',
  }),
  'pool.evt.changed': event({
    schema: M.PoolChanged,
    durable: true,
    producers: ['exit-node-manager'],
    consumers: ['load-balancer', 'health-monitor', 'sleep-controller', 'socket-activator'],
    summary: 'a pool was created or its spec changed',
  }),
  'pool.evt.deleted': event({
    schema: M.PoolDeleted,
    durable: true,
    producers: ['exit-node-manager'],
    consumers: ['load-balancer', 'health-monitor', 'sleep-controller', 'socket-activator'],
    summary: 'a pool is gone',
  }),
  'node.evt.created': event({
    schema: M.NodeCreated,
    durable: true,
    producers: ['exit-node-manager'],
    consumers: ['health-monitor', 'load-balancer', 'api-gateway'],
    summary: 'a container was created for a node',
  }),
  'node.evt.started': event({
    schema: M.NodeStarted,
    durable: true,
    producers: ['exit-node-manager'],
    consumers: ['health-monitor', 'load-balancer', 'sleep-controller', 'socket-activator', 'api-gateway', 'tunnel-manager'],
    summary: 'a node container is running, with its published ports',
  }),
  'node.evt.stopped': event({
    schema: M.NodeStopped,
    durable: true,
    producers: ['exit-node-manager'],
    consumers: ['health-monitor', 'load-balancer', 'sleep-controller', 'socket-activator', 'api-gateway'],
    summary: 'a node was stopped on purpose (reason "sleep" when put to sleep)',
  }),
  'node.evt.died': event({
    schema: M.NodeDied,
    durable: true,
    producers: ['exit-node-manager'],
    consumers: ['health-monitor', 'load-balancer', 'sleep-controller', 'api-gateway'],
    summary: 'a node container exited unexpectedly',
  }),
  'node.evt.removed': event({
    schema: M.NodeRemoved,
    durable: true,
    producers: ['exit-node-manager'],
    consumers: ['health-monitor', 'load-balancer', 'sleep-controller', 'socket-activator', 'api-gateway', 'tunnel-manager'],
    summary: 'a node container was removed',
  }),
  'node.evt.draining': event({
    schema: M.NodeDraining,
    durable: true,
    producers: ['exit-node-manager'],
    consumers: ['load-balancer', 'health-monitor', 'api-gateway'],
    summary: 'a node takes no new connections and will be removed',
  }),
  'node.evt.health': event({
    schema: M.NodeHealthReported,
    durable: true,
    producers: ['exit-node-manager'],
    consumers: ['health-monitor', 'api-gateway', 'socket-activator'],
    summary: "the container's own HEALTHCHECK changed state",
  }),
  'node.evt.stats': event({
    schema: M.NodeStats,
    durable: false,
    producers: ['exit-node-manager'],
    consumers: ['sleep-controller'],
    summary: 'a sample of cpu, memory and network counters of a node',
  }),
  'health.evt.changed': event({
    schema: M.HealthChanged,
    durable: true,
    producers: ['health-monitor'],
    consumers: ['load-balancer'],
    summary: 'a node went healthy or unhealthy',
  }),
  'health.evt.speedtest': event({
    schema: M.SpeedTestResult,
    durable: true,
    producers: ['health-monitor'],
    consumers: ['api-gateway'],
    summary: 'the result of a speed test',
  }),
  'lb.evt.connfail': event({
    schema: M.ConnectionFailed,
    durable: false,
    producers: ['load-balancer'],
    consumers: ['health-monitor'],
    summary: 'passive health signal: a connection to a node failed',
  }),
  'sleep.evt.slept': event({
    schema: M.NodeSlept,
    durable: true,
    producers: ['sleep-controller'],
    consumers: ['api-gateway'],
    summary: 'a node was put to sleep, with the reason',
  }),
  'sleep.evt.policy': event({
    schema: M.SleepPolicyChanged,
    durable: true,
    producers: ['sleep-controller'],
    consumers: ['api-gateway', 'socket-activator', 'health-monitor'],
    summary: "a pool's sleep policy changed",
  }),
  'activator.evt.woke': event({
    schema: M.NodeWoke,
    durable: true,
    producers: ['socket-activator'],
    consumers: ['api-gateway', 'sleep-controller'],
    summary: 'a sleeping node woke, with its cold-start time',
  }),
  'activator.evt.failed': event({
    schema: M.WakeFailed,
    durable: true,
    producers: ['socket-activator'],
    consumers: ['api-gateway'],
    summary: 'a wake failed; held connections were closed',
  }),
  'tunnel.evt.opened': event({
    schema: M.TunnelLifecycle,
    durable: true,
    producers: ['tunnel-manager'],
    consumers: ['api-gateway'],
    summary: 'a tunnel is open: its endpoint on the edge takes connections',
  }),
  'tunnel.evt.closed': event({
    schema: M.TunnelLifecycle,
    durable: true,
    producers: ['tunnel-manager'],
    consumers: ['api-gateway'],
    summary: 'a tunnel was closed (deleted, or its node removed): its endpoint and keys are gone',
  }),
  'tunnel.evt.up': event({
    schema: M.TunnelPathChanged,
    durable: true,
    producers: ['tunnel-manager'],
    consumers: ['api-gateway'],
    summary: 'a tunnel path came up',
  }),
  'tunnel.evt.down': event({
    schema: M.TunnelPathChanged,
    durable: true,
    producers: ['tunnel-manager'],
    consumers: ['api-gateway'],
    summary: 'a tunnel path went down, with the reason',
  }),
  'tunnel.evt.failover': event({
    schema: M.TunnelSwitched,
    durable: true,
    producers: ['tunnel-manager'],
    consumers: ['api-gateway'],
    summary: "a tunnel's new connections moved to another path (failover or failback), with the reason",
  }),
  'tunnel.evt.rotated': event({
    schema: M.TunnelKeysChanged,
    durable: true,
    producers: ['tunnel-manager'],
    consumers: ['api-gateway'],
    summary: "a tunnel's keys were rotated (on schedule or asked for); open connections kept",
  }),
  'tunnel.evt.expired': event({
    schema: M.TunnelKeysChanged,
    durable: true,
    producers: ['tunnel-manager'],
    consumers: ['api-gateway'],
    summary: 'a tunnel key expired before it was rotated: the edge refuses it from now on',
  }),
  'tunnel.evt.replanned': event({
    schema: M.TunnelPlanChanged,
    durable: false,
    producers: ['tunnel-manager'],
    consumers: ['tunnel-manager'],
    summary: "the edge changed what a node host should run: that host's agent asks for its plan now (it also asks on a timer)",
  }),
  'sync.evt.progress': event({
    schema: M.SyncProgress,
    durable: false,
    producers: ['storage-sync'],
    consumers: ['api-gateway'],
    summary: 'bytes copied so far by a running sync',
  }),
  'sync.evt.finished': event({
    schema: M.SyncFinished,
    durable: true,
    producers: ['storage-sync'],
    consumers: ['api-gateway'],
    summary: 'a sync run ended, ok or not',
  }),

  // proxy users: api-gateway owns them, every load-balancer worker keeps a copy
  'proxyuser.evt.created': event({
    schema: M.ProxyUserView,
    durable: true,
    producers: ['api-gateway'],
    consumers: ['load-balancer'],
    summary: 'a tenant created a proxy user: its name and password hash (never the password)',
  }),
  'proxyuser.evt.revoked': event({
    schema: M.ProxyUserRevoked,
    durable: true,
    producers: ['api-gateway'],
    consumers: ['load-balancer'],
    summary: 'a proxy user was revoked: refuse it from now on',
  }),
  'proxyuser.req.snapshot': request({
    schema: M.ProxyUserSnapshotRequest,
    reply: M.ProxyUserSnapshotReply,
    responder: 'api-gateway',
    requesters: ['load-balancer'],
    summary: "every tenant's live proxy users with their password hashes, to rebuild from",
  }),

  // ACL policy: api-gateway owns it; the load balancer and the activator enforce it per connection
  'acl.evt.changed': event({
    schema: M.AclPolicyView,
    durable: true,
    producers: ['api-gateway'],
    consumers: ['load-balancer', 'socket-activator'],
    summary: "a tenant's ACL policy changed, with its version (policy null: removed, back to no policy)",
  }),
  'acl.req.snapshot': request({
    schema: M.AclSnapshotRequest,
    reply: M.AclSnapshotReply,
    responder: 'api-gateway',
    requesters: ['load-balancer', 'socket-activator'],
    summary: "every tenant's ACL policy with its version (of one tenant or all), to rebuild from: pages cut from one read",
  }),

  'activator.req.arm': request({
    schema: M.ArmRequest,
    reply: M.ArmReply,
    responder: 'socket-activator',
    requesters: ['sleep-controller'],
    summary: "catch a node's ports from now on, before it is put to sleep",
  }),
  'activator.req.state': request({
    schema: M.CatchStateRequest,
    reply: M.CatchStateReply,
    responder: 'socket-activator',
    requesters: ['api-gateway'],
    summary: 'the mode, the redirect set and each known node: armed, waking or awake, and its public ports',
  }),
  'sleep.req.policy': request({
    schema: M.SleepPolicyRequest,
    reply: M.SleepPolicyReply,
    responder: 'sleep-controller',
    requesters: ['api-gateway', 'health-monitor'],
    summary: "a tenant's sleep policies (of one pool or all)",
  }),
  'node.req.list': request({
    schema: M.NodeListRequest,
    reply: M.NodeListReply,
    responder: 'exit-node-manager',
    requesters: ['api-gateway'],
    summary: "a tenant's nodes, optionally of one pool or one node",
  }),
  'node.req.logs': request({
    schema: M.NodeLogsRequest,
    reply: M.NodeLogsReply,
    responder: 'exit-node-manager',
    requesters: ['api-gateway'],
    summary: "the last lines of a node's container log",
  }),
  'pool.req.snapshot': request({
    schema: M.PoolSnapshotRequest,
    reply: M.PoolSnapshotReply,
    responder: 'exit-node-manager',
    requesters: ['api-gateway', 'load-balancer', 'health-monitor', 'sleep-controller', 'socket-activator', 'tunnel-manager'],
    summary: 'all pools and nodes (of one tenant or all), to rebuild state from: pages cut from one read; a row that fails its schema is left out and dead-lettered',
  }),
  'health.req.status': request({
    schema: M.HealthStatusRequest,
    reply: M.HealthStatusReply,
    responder: 'health-monitor',
    requesters: ['api-gateway', 'load-balancer'],
    summary: 'health status, score and last check of nodes',
  }),
  'health.req.speedtest': request({
    schema: M.SpeedTestRequest,
    reply: M.SpeedTestReply,
    responder: 'health-monitor',
    requesters: ['api-gateway'],
    summary: 'measure download, upload and latency through a node now',
  }),
  'lb.req.best': request({
    schema: M.BestNodeRequest,
    reply: M.BestNodeReply,
    responder: 'load-balancer',
    requesters: ['api-gateway'],
    summary: 'the node the next connection to a country or pool would go to',
  }),
  'lb.req.traffic': request({
    schema: M.TrafficRequest,
    reply: M.TrafficReply,
    responder: 'load-balancer',
    requesters: ['api-gateway', 'exit-node-manager'],
    summary: 'connection and byte counters per node',
  }),
  'tunnel.req.list': request({
    schema: M.TunnelListRequest,
    reply: M.TunnelListReply,
    responder: 'tunnel-manager',
    requesters: ['api-gateway'],
    summary: "a tenant's tunnels (or one), with each path's state, latency and key validity",
  }),
  'tunnel.req.plan': request({
    schema: M.TunnelHostPlanRequest,
    reply: M.TunnelHostPlan,
    responder: 'tunnel-manager',
    requesters: ['tunnel-manager'],
    summary: "a node host's agent hands the edge its keys' public halves and gets what it should run: WireGuard link, listeners, ssh sessions",
  }),
  'lb.req.strategy': request({
    schema: M.StrategyRequest,
    reply: M.StrategyReply,
    responder: 'load-balancer',
    requesters: ['api-gateway'],
    summary: "read or set a tenant's default balancing strategy",
  }),
} as const;

export type Catalog = typeof catalog;
export type Subject = keyof Catalog;
type SubjectsOf<T extends string> = { [K in Subject]: Catalog[K]['type'] extends T ? K : never }[Subject];
export type CommandSubject = SubjectsOf<'command'>;
export type EventSubject = SubjectsOf<'event'>;
export type RequestSubject = SubjectsOf<'request'>;
export type Payload<S extends Subject> = Static<Catalog[S]['schema']>;
export type ReplyOf<S extends RequestSubject> = Static<Catalog[S]['reply']>;

export function isSubject(s: string): s is Subject {
  return Object.hasOwn(catalog, s);
}

export function isDurable(subject: Subject): boolean {
  const def = catalog[subject];
  return def.type === 'command' || (def.type === 'event' && def.durable);
}
