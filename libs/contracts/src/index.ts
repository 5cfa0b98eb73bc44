export { catalog, isSubject, isDurable } from './catalog.js';
export type { Catalog, Subject, CommandSubject, EventSubject, RequestSubject, Payload, ReplyOf } from './catalog.js';
export { STREAMS, CONSUMERS, DEAD_LETTER_PREFIX, deadLetterSubject } from './streams.js';
export type { StreamDef, StreamName, ConsumerDef, ConsumerName } from './streams.js';
export {
  KV_BUCKETS,
  inboxPrefix,
  nkeyVariable,
  subjectsSentBy,
  subjectsReceivedBy,
  streamsOf,
  replyRefusal,
  natsPermissions,
  allNatsPermissions,
  subjectMatches,
} from './permissions.js';
export type { KvBucketDef, KvBucketName, NatsPermissions } from './permissions.js';
export { natsServerConfig, NATS_CONFIG_PATH } from './nats-config.js';
export type { ExtraNatsUser } from './nats-config.js';
export { HEADERS } from './headers.js';
export { SERVICE_NAMES } from './services.js';
export type { ServiceName } from './services.js';
export { COUNTRY_CODES, isKnownCountry } from './countries.js';
export {
  Id,
  TenantId,
  Timestamp,
  CountryCode,
  Name,
  PoolKind,
  PoolSpec,
  PoolTag,
  ACL_TAG,
  MAX_POOL_TAGS,
  MAX_POOL_NODES,
  MAX_ENV_VALUE_BYTES,
  PortSpec,
  NetworkMode,
  StickyKey,
  HealthStatus,
  NodeMetrics,
  HealthCheckSpec,
  SleepPolicy,
  SleepPolicyInput,
  SLEEP_POLICY_DEFAULTS,
  withSleepDefaults,
  ActivatorMode,
  ActivityKind,
  BalancingStrategy,
  NodeStatus,
  PublishedPort,
  OrderStatus,
  TunnelSpec,
  TunnelPathKind,
  TunnelPathSpec,
  TUNNEL_DEFAULTS,
  SyncJobSpec,
} from './schemas.js';
export type { NodeHealth, NodeTraffic } from './messages.js';
export { NodeView, PoolView } from './messages.js';
export { TunnelView, TunnelPathView } from './messages.js';
export { CatchView, ActivityEntry } from './messages.js';
export { ACL_LIMITS, AclPolicy, AclPolicyView } from './messages.js';
export { PROXY_USER_NAME, ProxyUserName, ProxyUserHash, ProxyUserView } from './messages.js';
export { ContractError, formatIssues, schemaIssues, payloadIssues, assertPayload, assertReply, poolSpecIssues, sleepPolicyIssues } from './validate.js';
export type { Issue } from './validate.js';
