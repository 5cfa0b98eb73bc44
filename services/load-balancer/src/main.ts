#!/usr/bin/env node
import cluster from 'node:cluster';

// The primary supervises; each worker is a whole load balancer (see primary.ts).
if (cluster.isPrimary) (await import('./primary.js')).runPrimary();
else await (await import('./worker.js')).runWorker();
