import type { Payload, ReplyOf } from '@switchyard/contracts';
import type { CommandHandlers } from './commands.js';
import { createContainerEventHandler, type ContainerEventDeps } from './container-events.js';
import type { ContainerEvent } from './docker-events.js';
import type { DockerOps } from './docker-ops.js';
import type { Manager } from './manager.js';
import type { Repository, StatsStore } from './ports.js';
import type { SnapshotPages, SkippedRow } from '@switchyard/service-kit';
import { listNodeViews, nodeLogs, snapshotViews } from './views.js';

/** The request/reply subjects this service answers. */
export type ServedSubject = 'node.req.list' | 'pool.req.snapshot' | 'node.req.logs';
export type RequestHandlers = { [S in ServedSubject]: (payload: Payload<S>) => Promise<ReplyOf<S>> };

/** Everything the manager answers, by where it comes from: main.ts only wires these. */
export interface Handlers {
  /** The durable consumer `exitNodeManagerCommands`. */
  readonly commands: CommandHandlers;
  /** Endpoints of the service's NATS micro service. */
  readonly requests: RequestHandlers;
  /** Docker's events of managed containers. */
  readonly containerEvent: (event: ContainerEvent) => void;
}

export interface HandlersDeps extends ContainerEventDeps {
  readonly manager: Manager;
  readonly repo: Repository;
  readonly stats: StatsStore;
  readonly docker: DockerOps;
  /** Serves pool.req.snapshot in pages; `skipped` hears of the rows left out. */
  readonly snapshots: { readonly pages: SnapshotPages; readonly skipped: (row: SkippedRow) => void };
}

export function createHandlers(deps: HandlersDeps): Handlers {
  const { repo, stats, docker } = deps;
  return {
    commands: deps.manager.commands,
    requests: {
      'node.req.list': (p) => listNodeViews(repo, stats, p),
      'pool.req.snapshot': (p) => deps.snapshots.pages.serve(p, () => snapshotViews(repo, stats, p.tenantId, deps.snapshots.skipped)),
      'node.req.logs': (p) => nodeLogs(repo, docker, p),
    },
    containerEvent: createContainerEventHandler(deps),
  };
}
