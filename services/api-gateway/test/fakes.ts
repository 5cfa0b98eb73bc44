import { NoRespondersError, RequestError } from '@nats-io/transport-node';
import { DummyDriver, Kysely, PostgresAdapter, PostgresIntrospector, PostgresQueryCompiler } from 'kysely';
import { pino } from 'pino';
import { assertPayload, assertReply, type NodeView, type Payload, type ReplyOf, type RequestSubject } from '@switchyard/contracts';
import { aNodeView } from '@switchyard/testkit/fixtures';
import { buildApp } from '../src/app.js';
import { createFleet } from '../src/fleet.js';
import { createPoolGuard, nodeAddLimiter } from '../src/orders/pool-guard.js';
import { limitsOf } from '../src/orders/pool-policy.js';
import { parseServerCatalog } from '../src/server-catalog.js';
import type { Database } from '../src/tables.js';

export const tenantId = '0b9f4f2e-6a2d-4c1e-9a51-3f5e8f0c2d11';
export const poolId = '7d3c2a10-1111-4a2b-8c3d-0e9f8a7b6c5d';
export const basic = { username: 'admin', password: 'correct horse battery', tenantId };
export const basicHeader = (u = basic.username, p = basic.password) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;

/** Answers queries as the contracts say their owners do; a subject without an answer has no responder. */
export type Answers = { [S in RequestSubject]?: (payload: Payload<S>) => ReplyOf<S> };

export function fakeBus(answers: Answers) {
  const asked: Array<{ subject: RequestSubject; payload: unknown }> = [];
  return {
    asked,
    async request<S extends RequestSubject>(subject: S, payload: Payload<S>): Promise<ReplyOf<S>> {
      assertPayload(subject, payload);
      asked.push({ subject, payload });
      const answer = answers[subject] as ((p: Payload<S>) => ReplyOf<S>) | undefined;
      // What the client throws for a subject nobody serves.
      if (!answer) throw new RequestError(`no responders: '${subject}'`, { cause: new NoRespondersError(subject) });
      const reply = answer(payload);
      assertReply(subject, reply);
      return reply;
    },
  };
}

// Queries run against nothing: the routes tested with it touch the database only for keys.
const dummyDb = new Kysely<Database>({
  dialect: {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => new DummyDriver(),
    createIntrospector: (k) => new PostgresIntrospector(k),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  },
});

export interface TestAppOptions {
  /** A real database for routes that store things; none by default. */
  db?: Kysely<Database>;
  natsConnected?: boolean;
  onOrderPlaced?: () => void;
  timeouts?: { requestMs: number; connectionMs: number };
}

/** The gateway's defaults (config.ts), as limitsOf reads them. */
export const defaultPolicyConfig = () => ({
  EXIT_NODE_IMAGE: 'switchyard/exit-node:dev',
  ADMIN_TENANT_NAME: 'admin',
  POOL_MAX_MEMORY_MB: 2048,
  POOL_MAX_CPUS: 2,
  POOL_MAX_PIDS: 512,
  TENANT_MAX_POOLS: 20,
  TENANT_MAX_NODES: 50,
  TENANT_NODE_ADDS_PER_MINUTE: 30,
});
export const limits = limitsOf(defaultPolicyConfig());

export function testApp(answers: Answers, opts: TestAppOptions = {}) {
  const bus = fakeBus(answers);
  const natsConnected = () => opts.natsConnected ?? true;
  const fleet = createFleet({ bus, natsConnected, timeoutMs: 500, speedTestTimeoutMs: 1000 });
  const app = buildApp({
    db: opts.db ?? dummyDb,
    log: pino({ level: 'silent' }),
    onOrderPlaced: opts.onOrderPlaced ?? (() => undefined),
    natsConnected,
    fleet,
    servers: parseServerCatalog({ jp: ['jp1.vpn.example'], us: ['us1.vpn.example', 'us2.vpn.example'] }),
    basic,
    guard: createPoolGuard({ db: opts.db ?? dummyDb, fleet, limits, limiter: nodeAddLimiter(limits.nodeAddsPerMinute) }),
    timeouts: opts.timeouts,
  });
  return { app, bus };
}

export function nodeView(overrides: Partial<NodeView> = {}): NodeView {
  return aNodeView({
    tenantId,
    poolId,
    nodeId: 'a1b2c3d4-0000-4000-8000-000000000001',
    name: 'tokyo-0',
    country: 'JP',
    containerId: 'c0ffee',
    startedAt: '2026-11-24T10:00:00.000Z',
    ...overrides,
  });
}
