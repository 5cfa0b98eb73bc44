// TCP plumbing shared by the services that sit in a connection's path (load balancer,
// socket activator): dial with bounds, splice with a bounded half-close, clean release.
export { dial } from './dial.js';
export type { DialOptions } from './dial.js';
export { firstAnswer } from './first-answer.js';
export type { FirstAnswer } from './first-answer.js';
export { release } from './release.js';
export { splice } from './splice.js';
export type { SpliceOptions } from './splice.js';
