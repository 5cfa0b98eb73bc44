import cluster, { type Worker } from 'node:cluster';
import { pino } from 'pino';
import { loadConfigOrExit } from '@switchyard/config';
import { LoadBalancerEnv } from './config.js';

const RESTART_DELAY_MS = 500;

/**
 * The primary process only supervises: it forks LB_WORKERS full load balancers (each with
 * its own NATS connection and table; the open-file limit is per process), restarts one that
 * dies, logs "ready" once every worker is ready, and forwards SIGTERM/SIGINT.
 */
export function runPrimary(): void {
  const config = loadConfigOrExit('load-balancer', LoadBalancerEnv);
  const log = pino({ name: 'load-balancer', level: config.LOG_LEVEL });
  const ready = new Set<number>();
  let announced = false;
  let stopping = false;

  const fork = (): Worker => {
    const w = cluster.fork();
    w.on('message', (m: { type?: string }) => {
      if (m?.type !== 'ready') return;
      ready.add(w.id);
      if (!announced && ready.size >= config.LB_WORKERS) {
        announced = true;
        log.info({ service: 'load-balancer', workers: config.LB_WORKERS }, 'ready');
      }
    });
    return w;
  };

  cluster.on('exit', (w, code, signal) => {
    const wasReady = ready.delete(w.id);
    if (stopping) {
      // exitCode is set when a worker failed to start; a requested stop ends with 0.
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(process.exitCode ?? 0);
      return;
    }
    if (!announced && !wasReady) {
      // A worker that cannot start (bad config, port taken) would only crash again.
      log.error({ pid: w.process.pid, code, signal }, 'worker failed to start; stopping');
      stopping = true;
      for (const other of Object.values(cluster.workers ?? {})) other?.process.kill('SIGTERM');
      process.exitCode = code || 1;
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(process.exitCode);
      return;
    }
    log.warn({ pid: w.process.pid, code, signal }, 'worker exited; starting another');
    setTimeout(() => !stopping && fork(), RESTART_DELAY_MS).unref();
  });

  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'signal received');
    const workers = Object.values(cluster.workers ?? {});
    if (workers.length === 0) process.exit(0);
    for (const w of workers) w?.process.kill('SIGTERM');
    setTimeout(() => {
      log.error('workers did not stop in time; killing them');
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGKILL');
      process.exit(1);
    }, config.SHUTDOWN_TIMEOUT_MS + 1000).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  cluster.schedulingPolicy = config.LB_ACCEPT === 'shared' ? cluster.SCHED_NONE : cluster.SCHED_RR;
  cluster.setupPrimary({ execArgv: [...process.execArgv, `--max-semi-space-size=${config.LB_WORKER_SEMI_SPACE_MB}`] });
  for (let i = 0; i < config.LB_WORKERS; i++) fork();
}
