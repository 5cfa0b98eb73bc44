export { runService } from './kit.js';
export type { ConsumerMap, EventHandlers, FollowOptions, RunningService, ServiceContext, ServiceDefinition } from './kit.js';
export { Resync } from './resync.js';
export type { ResyncOptions } from './resync.js';
export { createOrderReporter, OrderFailure } from './orders.js';
export type { OrderRef, OrderReporter, OrderReporterDeps, OrderResult } from './orders.js';
export { backoffDelay, type Backoff } from '@switchyard/bus';
export { cutSnapshot, requestPoolSnapshot, SnapshotExpired, SnapshotPages } from './snapshot-pages.js';
export type { Cut, FetchedSnapshot, FetchSnapshotOptions, PoolSnapshot, SkippedRow, SnapshotPagesOptions } from './snapshot-pages.js';
