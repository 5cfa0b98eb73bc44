export { createBus, Rejection } from './bus.js';
export type { Bus, ConsumeOptions, ConsumerHandlers, Consumption, Delivery, PublishOptions } from './bus.js';
export { traceHeaders, contextFromHeaders, contextFromTraceparent, currentTraceparent } from './tracing.js';
