import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { SERVICE_NAMES, type ServiceName } from '@switchyard/contracts';
import { createDb, migrateToLatest, type Migration } from '@switchyard/db';
import { ACCESS, accessName, ownedTables, passwordVariable, POSTGRES_SERVICES, roleUrl } from '@switchyard/roles';
import {
  createTestDatabase,
  eventually,
  withPgClient,
  freePort,
  poolOrder,
  rejectionOf,
  repoRoot,
  startTestSystem,
  waitForPort,
  type TestDatabase,
  type TestSystem,
} from '@switchyard/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrations as apiGatewayMigrations } from '../../services/api-gateway/src/migrations.js';
import { migrations as exitNodeManagerMigrations } from '../../services/exit-node-manager/src/migrations.js';
import { migrations as sleepControllerMigrations } from '../../services/sleep-controller/src/migrations.js';
import { migrations as socketActivatorMigrations } from '../../services/socket-activator/src/migrations.js';

// "A table has one owning service" as a database fact, and Redis keys per service, against the
// real Postgres and Redis: every service of a test system runs on its own role and user.
const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const STARTED: ServiceName[] = ['exit-node-manager', 'api-gateway', 'sleep-controller', 'socket-activator', 'health-monitor', 'tunnel-manager'];

// One table per owning service to attack, and a column of it to write.
const TARGETS: Record<string, { table: string; column: string }> = {
  'api-gateway': { table: 'orders', column: 'status' },
  'exit-node-manager': { table: 'pools', column: 'name' },
  'sleep-controller': { table: 'sleep_policies', column: 'tenant_id' },
  'socket-activator': { table: 'activator_catches', column: 'node_id' },
  'tunnel-manager': { table: 'tunnels', column: 'name' },
};

const writes = (t: { table: string; column: string }) => ({
  INSERT: `insert into ${t.table} default values`,
  UPDATE: `update ${t.table} set ${t.column} = ${t.column}`,
  DELETE: `delete from ${t.table}`,
  TRUNCATE: `truncate ${t.table}`,
  DROP: `drop table ${t.table}`,
});

describe('services on their own Postgres roles and Redis users', () => {
  let sys: TestSystem;
  let redis: Redis;

  beforeAll(async () => {
    sys = await startTestSystem({ services: STARTED });
    redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  });
  afterAll(async () => {
    redis?.disconnect();
    await sys?.close();
  });

  it('carry a member order through, each service writing its own keys', async () => {
    const tenant = await sys.http('POST', '/v1/tenants', { body: { name: `roles-${randomBytes(3).toString('hex')}` } });
    expect(tenant.status).toBe(201);
    const placed = await sys.http('POST', '/v1/orders', { body: poolOrder('osaka', 'JP'), key: tenant.body.apiKey });
    expect(placed.status).toBe(202);
    const order = await sys.waitForOrder(placed.body.id, ['fulfilled', 'failed'], { key: tenant.body.apiKey });
    expect(order.status).toBe('fulfilled');
    const nodeId = (order.result as { nodeIds: string[] }).nodeIds[0]!;
    // api-gateway's node-add budget (a Lua script under its user; a refusal would fall back to memory unseen).
    expect(await redis.exists(`switchyard:node-adds:${tenant.body.id}`)).toBe(1);
    expect(await redis.hget(`node:${nodeId}`, 'status')).toBe('running');
    await eventually(
      () => redis.hget(`health:${nodeId}`, 'status'),
      (s) => s !== null,
      20_000,
      'health-monitor writes the node health',
    );
  });

  it('leaves every table owned by its service role, none by the admin, who still reads them all', async () => {
    const owners = await sys.db.query<{ tablename: string; tableowner: string }>("select tablename, tableowner from pg_tables where schemaname = 'public'");
    const expected = new Map(POSTGRES_SERVICES.flatMap((s) => ownedTables(s).map((t) => [t, accessName(sys.db.name, s)] as const)));
    for (const [table, role] of expected) expect(owners.find((o) => o.tablename === table)?.tableowner, table).toBe(role);
    const roles = new Set(POSTGRES_SERVICES.map((s) => accessName(sys.db.name, s)));
    expect(owners.filter((o) => !roles.has(o.tableowner))).toEqual([]);
    for (const { tablename } of owners) await sys.db.query(`select count(*) from ${tablename}`);
  });

  const pairs = POSTGRES_SERVICES.flatMap((attacker) => POSTGRES_SERVICES.filter((owner) => owner !== attacker).map((owner) => [attacker, owner] as const));
  it.each(pairs)("refuses %s's role every write to a table of %s", async (attacker, owner) => {
    await withPgClient(sys.db.urlFor(attacker), async (c) => {
      for (const [what, sql] of Object.entries(writes(TARGETS[owner]!))) {
        const err = (await rejectionOf(c.query(sql))) as { code?: string; message: string };
        // 42501 insufficient_privilege: "permission denied for table …" or "must be owner of table …".
        expect(err.code, `${what} by ${attacker}: ${err.message}`).toBe('42501');
      }
    });
  });

  it.each(POSTGRES_SERVICES)("lets %s's role write its own tables", async (service) => {
    const t = TARGETS[service]!;
    await withPgClient(sys.db.urlFor(service), async (c) => {
      await c.query('begin');
      await c.query(`insert into ${t.table} select * from ${t.table} where false`);
      await c.query(`update ${t.table} set ${t.column} = ${t.column} where false`);
      await c.query(`delete from ${t.table} where false`);
      await c.query(`alter table ${t.table} add column roles_probe integer`);
      await c.query('rollback');
    });
  });

  describe('Redis', () => {
    const suffix = `roles-test-${randomBytes(4).toString('hex')}`;
    const keyIn = (pattern: string) => pattern.replace('*', suffix);
    const users = new Map<ServiceName, Redis>();
    const as = (service: ServiceName) => {
      let r = users.get(service);
      if (!r) {
        r = new Redis(sys.redisUsers.urlFor(service), { maxRetriesPerRequest: 1, lazyConnect: true });
        users.set(service, r);
      }
      return r;
    };
    afterAll(async () => {
      for (const r of users.values()) r.disconnect();
      const patterns = Object.values(ACCESS).flatMap((a) => [...a.redis.keys, ...a.redis.readKeys]);
      await redis.del(...patterns.map(keyIn));
    });

    const services = Object.keys(ACCESS) as ServiceName[];
    const allPatterns = [...new Set(services.flatMap((s) => ACCESS[s].redis.keys))];

    it.each(services.filter((s) => ACCESS[s].redis.keys.length > 0))('lets %s write and read inside its own patterns', async (service) => {
      for (const pattern of ACCESS[service].redis.keys) {
        const key = keyIn(pattern);
        expect(await as(service).hset(key, 'probe', '1')).toBeGreaterThanOrEqual(0);
        expect(await as(service).hget(key, 'probe')).toBe('1');
        expect(await as(service).del(key)).toBe(1);
      }
    });

    it.each(services)('refuses %s (NOPERM) outside its patterns', async (service) => {
      const own = ACCESS[service].redis;
      const foreign = [...allPatterns.filter((p) => !own.keys.includes(p)), 'unowned:*'];
      for (const pattern of foreign) {
        const key = keyIn(pattern);
        const write = (await rejectionOf(as(service).hset(key, 'probe', '1'))) as Error;
        expect(write.message, `${service} writing ${key}`).toMatch(/^NOPERM/);
        if (!own.readKeys.includes(pattern)) {
          const read = (await rejectionOf(as(service).hgetall(key))) as Error;
          expect(read.message, `${service} reading ${key}`).toMatch(/^NOPERM/);
        }
      }
      // Server-wide commands are refused whatever the keys (KEYS would list every key; the
      // FUNCTION family, in @write, could drop every function: a library that does not exist
      // is asked for, so an allowed call would fail differently and change nothing).
      expect(((await rejectionOf(as(service).keys('*'))) as Error).message).toMatch(/^NOPERM/);
      expect(((await rejectionOf(as(service).call('FUNCTION', 'DELETE', suffix))) as Error).message).toMatch(/^NOPERM/);
    });

    it.each(SERVICE_NAMES)('refuses %s the CLIENT commands that would freeze or cut off the others', async (service) => {
      // Harmless if allowed (a 1 ms pause, a client id that does not exist), NOPERM when refused.
      for (const args of [['PAUSE', '1', 'WRITE'], ['KILL', 'ID', '999999999'], ['LIST'], ['NO-EVICT', 'ON']]) {
        const err = (await rejectionOf(as(service).call('CLIENT', ...args))) as Error;
        expect(err.message, `${service}: CLIENT ${args.join(' ')}`).toMatch(/^NOPERM/);
      }
      expect(await as(service).ping()).toBe('PONG');
    });

    it('lets api-gateway only read the acl:* counters the load balancer writes', async () => {
      const key = keyIn('acl:*');
      await as('load-balancer').hincrby(key, 'rule-0', 1);
      expect(await as('api-gateway').hgetall(key)).toEqual({ 'rule-0': '1' });
      expect(((await rejectionOf(as('api-gateway').hincrby(key, 'rule-0', 1))) as Error).message).toMatch(/^NOPERM/);
    });
  });
});

describe('a database from before the roles', () => {
  let db: TestDatabase;
  let sys: TestSystem | undefined;
  const shared: Record<string, Record<string, Migration>> = {
    'api-gateway': apiGatewayMigrations,
    'exit-node-manager': exitNodeManagerMigrations,
    'sleep-controller': sleepControllerMigrations,
    'socket-activator': socketActivatorMigrations,
  };

  beforeAll(async () => {
    sys = await startTestSystem();
    db = sys.db;
  });
  afterAll(async () => sys?.close());

  it('hands the tables the admin made over to the services, which then migrate and work on their roles', async () => {
    // As a deployment before the roles: one role ran every migration shipped until then.
    const admin = createDb(db.url, { max: 1 });
    try {
      for (const service of POSTGRES_SERVICES) {
        const { lastShared, migrationsTable } = ACCESS[service].postgres!;
        if (lastShared === undefined) continue;
        const migrations = Object.fromEntries(Object.entries(shared[service]!).filter(([name]) => name <= lastShared));
        await migrateToLatest(admin, { migrations, table: migrationsTable });
      }
    } finally {
      await admin.destroy();
    }
    const adminRole = new URL(db.url).username;
    const before = await db.query<{ tableowner: string }>("select tableowner from pg_tables where schemaname = 'public'");
    expect(new Set(before.map((t) => t.tableowner))).toEqual(new Set([adminRole]));

    const handed = await db.applyRoles();
    expect(handed.sort()).toEqual(POSTGRES_SERVICES.flatMap(ownedTables).sort());
    expect(await db.applyRoles()).toEqual([]);
    const after = await db.query<{ tableowner: string }>("select tableowner from pg_tables where schemaname = 'public'");
    expect(after.filter((t) => t.tableowner === adminRole)).toEqual([]);

    await sys!.start('exit-node-manager');
    await sys!.start('api-gateway');
    await sys!.start('sleep-controller');
    const placed = await sys!.http('POST', '/v1/orders', { body: poolOrder('lisbon', 'PT') });
    expect(placed.status).toBe(202);
    expect((await sys!.waitForOrder(placed.body.id, ['fulfilled', 'failed'])).status).toBe('fulfilled');
  });
});

describe("compose's one-shot roles (cli.js compose)", () => {
  let db: TestDatabase;
  let dir: string;
  let redis: { child: ReturnType<typeof spawn>; exited: Promise<unknown>; port: number } | undefined;
  const passwords = Object.fromEntries(
    SERVICE_NAMES.flatMap((s) => (['postgres', 'redis'] as const).map((store) => [passwordVariable(store, s), randomBytes(12).toString('hex')])),
  );
  const adminPassword = randomBytes(12).toString('hex');

  beforeAll(async () => {
    db = await createTestDatabase();
    dir = mkdtempSync(join(tmpdir(), 'sy-roles-'));
    await promisify(execFile)('node', ['libs/roles/dist/cli.js', 'compose'], {
      cwd: repoRoot,
      env: {
        PATH: process.env['PATH'] ?? '',
        ADMIN_DATABASE_URL: db.url,
        ROLES_PREFIX: db.name,
        REDIS_ACL_FILE: join(dir, 'users.acl'),
        REDIS_ADMIN_PASSWORD: adminPassword,
        ...passwords,
      },
    });
    // A Redis of the test's own loads the file, as compose's does.
    const port = await freePort();
    const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--aclfile', join(dir, 'users.acl')], {
      stdio: 'ignore',
    });
    redis = { child, exited: once(child, 'exit'), port };
    await waitForPort(port, 10_000);
  });
  afterAll(async () => {
    // Each step on its own: a failed start must still leave no database, role or process behind.
    try {
      if (redis && redis.child.exitCode === null) {
        process.kill(redis.child.pid!, 'SIGTERM');
        await redis.exited;
      }
    } finally {
      if (dir) rmSync(dir, { recursive: true, force: true });
      await db?.drop();
    }
  });

  // This machine's Postgres trusts 127.0.0.1 (pg_hba), so a password is not checked here; the
  // compose image's Postgres asks for it (scram-sha-256).
  it('makes a login role of each owning service, each with CREATE in schema public and nothing else', async () => {
    for (const s of POSTGRES_SERVICES) {
      const url = roleUrl(db.url, accessName(db.name, s), passwords[passwordVariable('postgres', s)]!);
      await withPgClient(url, async (c) => {
        expect((await c.query('select current_user as u')).rows[0].u).toBe(accessName(db.name, s));
        await c.query('begin');
        await c.query('create table roles_probe (id integer)');
        await c.query('rollback');
        const member = await c.query('select count(*)::int as n from pg_auth_members where member = (select oid from pg_roles where rolname = current_user)');
        expect(member.rows[0].n).toBe(0);
      });
    }
  });

  it('writes an ACL file with only hashes: the default user is off, each service has its keys', async () => {
    const file = readFileSync(join(dir, 'users.acl'), 'utf8');
    for (const password of Object.values(passwords)) expect(file).not.toContain(password);
    const url = `redis://127.0.0.1:${redis!.port}`;
    const anonymous = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, enableReadyCheck: false });
    const lb = new Redis(roleUrl(url, accessName(db.name, 'load-balancer'), passwords[passwordVariable('redis', 'load-balancer')]!), { lazyConnect: true });
    const admin = new Redis(roleUrl(url, `${db.name}_admin`, adminPassword), { lazyConnect: true });
    try {
      await anonymous.connect();
      expect(((await rejectionOf(anonymous.get('lb:x'))) as Error).message).toMatch(/^NOAUTH/);
      await lb.set('lb:x', '1');
      expect(((await rejectionOf(lb.set('health:x', '1'))) as Error).message).toMatch(/^NOPERM/);
      expect(await admin.get('lb:x')).toBe('1');
    } finally {
      anonymous.disconnect();
      lb.disconnect();
      admin.disconnect();
    }
  });
});
