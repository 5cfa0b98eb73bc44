export { runService } from './kit.js';
export type { RunningService, ServiceContext, ServiceDefinition } from './kit.js';
export { Resync } from './resync.js';
