export { backoffDelay, REDELIVERY, redeliverySchedule } from './backoff.js';
export { isBusUnavailable } from './errors.js';
export { openWatchedMap } from './kv.js';
export type { WatchedMap, WatchedMapOptions } from './kv.js';
export type { Backoff } from './backoff.js';
export { createBus, Rejection } from './bus.js';
export type { Bus, BusLog, BusOptions, ConsumeOptions, ConsumerHandlers, Consumption, Delivery, PublishOptions } from './bus.js';
export { traceHeaders, contextFromHeaders, contextFromTraceparent, currentTraceparent } from './tracing.js';
