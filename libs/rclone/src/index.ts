// rclone as storage-sync's engine: `rclone rcd` supervised on loopback and driven over its rc
// API, copies as async jobs with per-job progress. No file is ever copied in JavaScript.
export { startRcd, RcError, type Rcd, type RcdOptions } from './rcd.js';
export { startCopy, waitForJob, progressOf, stopJob, type CopyMode, type Progress, type JobStatus } from './jobs.js';
