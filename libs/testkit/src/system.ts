import { rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import type { ServiceName } from '@switchyard/contracts';
import { ACCESS } from '@switchyard/roles';
import { createDockerClient } from '@switchyard/docker';
import { eventually } from './async.js';
import { LOOPBACK_LB_ENV } from './lb.js';
import { createTestDatabase, type TestDatabase } from './database.js';
import { startNatsServer, type NatsServer } from './nats-server.js';
import { freePort } from './net.js';
import { startReady, startService, type ServiceProcess } from './processes.js';
import { createTestRedisUsers, REDIS_URL, type TestRedisUsers } from './redis-users.js';

export const EXIT_NODE_IMAGE = process.env['EXIT_NODE_IMAGE'] ?? 'switchyard/exit-node:dev';
export const docker = createDockerClient();

export interface HttpResult<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

/**
 * One Switchyard of the test's own: a private NATS server and database, the real Redis and
 * Docker engine, and services started as separate processes. `close` ends what it started
 * (by pid) and removes the containers of the tenants it created.
 */
export interface TestSystem {
  readonly nats: NatsServer;
  readonly db: TestDatabase;
  /** Each service's Redis user of this system (start and spawn connect services as them). */
  readonly redisUsers: TestRedisUsers;
  readonly adminKey: string;
  readonly apiPort: number;
  readonly apiUrl: string;
  /**
   * Environment every service of this system gets; pass overrides per service. Its DATABASE_URL
   * and REDIS_URL are the admin's, and it holds no NATS identity (see `identityEnv`): `start` and
   * `spawn` add the service's own role, Redis user and nkey seed.
   */
  env(overrides?: Record<string, string>): Record<string, string>;
  /** What makes a service connect to this system's NATS as itself (its nkey seed file). */
  identityEnv(name: ServiceName): Record<string, string>;
  start(name: ServiceName, overrides?: Record<string, string>): Promise<ServiceProcess>;
  spawn(name: ServiceName, overrides?: Record<string, string>): ServiceProcess;
  /** The processes of a service this system started that have not exited, oldest first. */
  processes(name: ServiceName): ServiceProcess[];
  /** A NATS client of the test, with every permission (the test servers' harness user). */
  natsClient(): Promise<NatsConnection>;
  http<T = any>(method: string, path: string, opts?: { body?: unknown; rawBody?: string; key?: string | null; headers?: Record<string, string> }): Promise<HttpResult<T>>;
  waitForOrder(orderId: string, statuses: string[], opts?: { key?: string; timeoutMs?: number }): Promise<any>;
  close(): Promise<void>;
}

/** `services` are started (in that order) before it is returned, each waited on until ready. */
export async function startTestSystem(opts: { services?: ServiceName[] } = {}): Promise<TestSystem> {
  const nats = await startNatsServer();
  const db = await createTestDatabase().catch(async (err: unknown) => {
    await nats.stop();
    throw err;
  });
  const redisUsers = await createTestRedisUsers(db.name).catch(async (err: unknown) => {
    await db.drop().catch(() => undefined);
    await nats.stop();
    throw err;
  });
  const adminKey = `test_admin_${randomBytes(16).toString('hex')}`;
  // One per system, shared by its gateway and exit-node-manager as in a deployment.
  const secretsKey = randomBytes(32).toString('base64');
  const apiPort = await freePort();
  // Every test gateway calls from 127.0.0.1 into the one shared Redis: budgets of the system's own.
  const rateLimitPrefix = `switchyard:rl:test:${randomBytes(6).toString('hex')}`;
  // Tests that want the nftables mode name a table of their own; by default the activator
  // of a test system touches no nftables and listens on a port of its own.
  const activatorPort = await freePort();
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  // tunnel-manager ends what an earlier run left in its state directory: one per system.
  const tunnelStateDir = `/run/switchyard-test-system-${randomBytes(6).toString('hex')}`;
  const processes: ServiceProcess[] = [];
  const clients: NatsConnection[] = [];

  const env = (overrides: Record<string, string> = {}) => ({
    NATS_URL: nats.url,
    DATABASE_URL: db.url,
    REDIS_URL,
    ADMIN_API_KEY: adminKey,
    API_HOST: '127.0.0.1',
    API_PORT: String(apiPort),
    EXIT_NODE_IMAGE,
    OUTBOX_POLL_MS: '200',
    SHUTDOWN_TIMEOUT_MS: '10000',
    ACTIVATOR_MODE: 'proxy',
    ACTIVATOR_LISTEN_PORT: String(activatorPort),
    ...LOOPBACK_LB_ENV,
    EXIT_NODE_OUTBOUND_SUBNETS: '127.0.0.1/32',
    SECRETS_KEY: secretsKey,
    API_RATE_LIMIT_PREFIX: rateLimitPrefix,
    TUNNEL_STATE_DIR: tunnelStateDir,
    ...overrides,
  });
  // Each service connects as its own Postgres role (if it keeps state there) and Redis user.
  const accessEnv = (name: ServiceName): Record<string, string> => ({
    REDIS_URL: redisUsers.urlFor(name),
    ...(ACCESS[name].postgres ? { DATABASE_URL: db.urlFor(name) } : {}),
  });

  const http: TestSystem['http'] = async (method, path, opts = {}) => {
    const key = opts.key === undefined ? adminKey : opts.key;
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    if (key) headers['authorization'] = `Bearer ${key}`;
    let body: string | undefined = opts.rawBody;
    if (opts.body !== undefined) body = JSON.stringify(opts.body);
    if (body !== undefined) headers['content-type'] ??= 'application/json';
    const res = await fetch(`${apiUrl}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: res.status, body: parsed as any, headers: res.headers };
  };

  const system: TestSystem = {
    nats,
    db,
    redisUsers,
    adminKey,
    apiPort,
    apiUrl,
    env,
    identityEnv: (name) => nats.identityEnv(name),
    async start(name, overrides) {
      const p = await startReady(name, env({ ...nats.identityEnv(name), ...accessEnv(name), ...overrides }));
      processes.push(p);
      return p;
    },
    spawn(name, overrides) {
      const p = startService(name, env({ ...nats.identityEnv(name), ...accessEnv(name), ...overrides }));
      processes.push(p);
      return p;
    },
    processes(name) {
      return processes.filter((p) => p.name === name && p.child.exitCode === null && p.child.signalCode === null);
    },
    async natsClient() {
      const nc = await nats.connect();
      clients.push(nc);
      return nc;
    },
    http,
    async waitForOrder(orderId, statuses, opts = {}) {
      const read = () => http('GET', `/v1/orders/${orderId}`, { ...(opts.key ? { key: opts.key } : {}) }).catch((e) => ({ status: 0, body: String(e) }));
      const done = (res: { status: number; body: any }) => res.status === 200 && statuses.includes(res.body.status);
      const res = await eventually(read, done, opts.timeoutMs ?? 30_000, `order ${orderId} ${statuses.join('|')}`, { intervalMs: 100, returnLast: true });
      if (!done(res)) throw new Error(`order ${orderId} did not reach ${statuses.join('|')}; last seen: ${JSON.stringify(res.body)}`);
      return res.body;
    },
    async close() {
      await Promise.all(processes.map((p) => p.stop('SIGTERM').catch(() => undefined)));
      await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
      const tenants = await db.query<{ id: string }>('select id from tenants').catch(() => []);
      for (const t of tenants) await removeTenantContainers(t.id);
      await redisUsers.delete().catch(() => undefined);
      await rm(tunnelStateDir, { recursive: true, force: true });
      await db.drop().catch(() => undefined);
      // Every service of a test system runs as its own NATS identity: a subject its
      // permissions lack shows up here, and fails the file, whatever the test looked at.
      const violations = nats
        .log()
        .split('\n')
        .filter((line) => / (Publish|Subscription) Violation - /.test(line));
      await nats.stop();
      if (violations.length > 0) throw new Error(`NATS refused a service of this test system (see infra/nats/nats-server.conf):\n${violations.join('\n')}`);
    },
  };
  try {
    for (const name of opts.services ?? []) await system.start(name);
  } catch (err) {
    await system.close();
    throw err;
  }
  return system;
}

/** Removes the tenant's containers, then the volumes and network they used. */
export async function removeTenantContainers(tenantId: string): Promise<void> {
  const label = { label: [`io.switchyard.tenant=${tenantId}`] };
  const containers = await docker.listContainers({ all: true, filters: label });
  for (const c of containers)
    await docker
      .getContainer(c.Id)
      .remove({ force: true })
      .catch(() => undefined);
  const { Volumes: volumes } = await docker.listVolumes({ filters: label });
  for (const v of volumes ?? [])
    await docker
      .getVolume(v.Name)
      .remove()
      .catch(() => undefined);
  for (const n of await docker.listNetworks({ filters: label }))
    await docker
      .getNetwork(n.Id)
      .remove()
      .catch(() => undefined);
}

export function poolOrder(name: string, country = 'JP', nodes = 1) {
  return { type: 'pool.create', pool: { name, kind: 'exit', country, nodes: { min: nodes, max: Math.max(nodes, 1) } } };
}
