import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, isDatabaseUnavailable, migrateToLatest, sql, type Kysely, type Migration } from '../src/index.js';
import { rejectionOf } from '@switchyard/testkit';

const url = process.env['TEST_DATABASE_URL'] ?? 'postgres://switchyard:switchyard@127.0.0.1:5432/switchyard_test';
const suffix = `${process.pid}_${randomBytes(3).toString('hex')}`;
const table = `test_migrations_${suffix}`;
const items = `test_items_${suffix}`;
const broken = `test_broken_${suffix}`;
const appName = `db-test-${suffix}`;

interface TestDb {
  [name: string]: { id: number; name: string; note: string | null };
}

let db: Kysely<TestDb>;

const createItems: Migration = {
  async up(db) {
    await db.schema
      .createTable(items)
      .addColumn('id', 'integer', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull().unique())
      .execute();
  },
};
const addNote: Migration = {
  async up(db) {
    await db.schema.alterTable(items).addColumn('note', 'text').execute();
  },
};

async function tableExists(name: string): Promise<boolean> {
  const { rows } = await sql<{ found: string | null }>`select to_regclass(${name})::text as found`.execute(db);
  return rows[0]?.found != null;
}

async function appliedMigrations(history: string): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`select name from ${sql.table(history)} order by name`.execute(db);
  return rows.map((r) => r.name);
}

beforeAll(() => {
  db = createDb<TestDb>(url, { max: 4, applicationName: appName });
});

afterAll(async () => {
  for (const name of [items, broken, table, `${table}_lock`, `${table}_b`, `${table}_b_lock`]) {
    await sql`drop table if exists ${sql.table(name)}`.execute(db);
  }
  await db.destroy();
});

describe('createDb', () => {
  it('runs queries and names its connections', async () => {
    const { rows } = await sql<{ app: string }>`select current_setting('application_name') as app`.execute(db);
    expect(rows[0]?.app).toBe(appName);
  });
});

describe('migrateToLatest', () => {
  it('applies migrations once, in name order, and is idempotent', async () => {
    // Object order differs from name order on purpose: the name decides.
    const migrations = { '2026_11_23_0002_add_note': addNote, '2026_11_23_0001_create_items': createItems };
    await migrateToLatest(db, { migrations, table });
    expect(await tableExists(items)).toBe(true);
    expect(await tableExists(`${table}_lock`)).toBe(true);
    expect(await appliedMigrations(table)).toEqual(['2026_11_23_0001_create_items', '2026_11_23_0002_add_note']);

    await migrateToLatest(db, { migrations, table });
    expect(await appliedMigrations(table)).toEqual(['2026_11_23_0001_create_items', '2026_11_23_0002_add_note']);

    await db.insertInto(items).values({ id: 1, name: 'a', note: 'n' }).execute();
    expect(await db.selectFrom(items).selectAll().execute()).toEqual([{ id: 1, name: 'a', note: 'n' }]);
  });

  it('keeps separate histories per table in the same database', async () => {
    const other = `${table}_b`;
    const ran: string[] = [];
    const record = (name: string): Migration => ({
      async up() {
        ran.push(name);
      },
    });
    await migrateToLatest(db, { migrations: { '2026_11_23_0001_create_items': record('b1') }, table: other });
    expect(ran).toEqual(['b1']);
    expect(await appliedMigrations(other)).toEqual(['2026_11_23_0001_create_items']);
    expect(await appliedMigrations(table)).toHaveLength(2);
  });

  it('names the failing migration, keeps the cause, and rolls the batch back', async () => {
    const history = `${table}_b`;
    const migrations: Record<string, Migration> = {
      '2026_11_23_0001_create_items': { async up() {} },
      '2026_11_24_0001_create_broken': {
        async up(db) {
          await db.schema.createTable(broken).addColumn('id', 'integer').execute();
        },
      },
      '2026_11_24_0002_bad_sql': {
        async up(db) {
          await sql`select * from no_such_table_${sql.raw(suffix)}`.execute(db);
        },
      },
    };
    const err = await rejectionOf(migrateToLatest(db, { migrations, table: history }));
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/^migration 2026_11_24_0002_bad_sql failed: relation .* does not exist$/);
    expect((err as Error).cause).toMatchObject({ code: '42P01' });
    expect(isDatabaseUnavailable(err)).toBe(false);
    // Postgres has transactional DDL: the migration that succeeded before it is undone too.
    expect(await tableExists(broken)).toBe(false);
    expect(await appliedMigrations(history)).toEqual(['2026_11_23_0001_create_items']);
  });

  it('refuses migration names without a timestamp prefix', async () => {
    await expect(migrateToLatest(db, { migrations: { orders: { async up() {} } }, table: `${table}_never` })).rejects.toThrow(
      `migrations for ${table}_never must be named YYYY_MM_DD_NNNN_description: orders`,
    );
    expect(await tableExists(`${table}_never`)).toBe(false);
  });
});

describe('isDatabaseUnavailable', () => {
  it('is true, quickly, for a database nobody listens for', async () => {
    const dead = createDb(`postgres://switchyard:switchyard@127.0.0.1:1/switchyard_test`);
    try {
      const started = Date.now();
      const err = await rejectionOf(sql`select 1`.execute(dead));
      expect(Date.now() - started).toBeLessThan(3500);
      expect(err).toMatchObject({ code: 'ECONNREFUSED' });
      expect(isDatabaseUnavailable(err)).toBe(true);
    } finally {
      await dead.destroy();
    }
  });

  it('is true for a migration that could not reach the database', async () => {
    const dead = createDb(`postgres://switchyard:switchyard@127.0.0.1:1/switchyard_test`);
    try {
      const err = await rejectionOf(migrateToLatest(dead, { migrations: {}, table }));
      expect(isDatabaseUnavailable(err)).toBe(true);
    } finally {
      await dead.destroy();
    }
  });

  it('is false for a unique violation and other SQL errors', async () => {
    await db.insertInto(items).values({ id: 2, name: 'dup', note: null }).execute();
    const dup = await rejectionOf(db.insertInto(items).values({ id: 3, name: 'dup', note: null }).execute());
    expect(dup).toMatchObject({ code: '23505' });
    expect(isDatabaseUnavailable(dup)).toBe(false);

    const syntax = await rejectionOf(sql`selec 1`.execute(db));
    expect(syntax).toMatchObject({ code: '42601' });
    expect(isDatabaseUnavailable(syntax)).toBe(false);
  });

  it('is true when the pool cannot hand out a connection in time', async () => {
    const tiny = createDb(url, { max: 1 });
    try {
      const err = await tiny.transaction().execute(async (trx) => {
        await sql`select 1`.execute(trx);
        return rejectionOf(sql`select 2`.execute(tiny));
      });
      expect((err as Error).message).toBe('timeout exceeded when trying to connect');
      expect(isDatabaseUnavailable(err)).toBe(true);
    } finally {
      await tiny.destroy();
    }
  });

  it('is true when the server terminates a connection in use, and the process survives', async () => {
    const victimApp = `${appName}-victim`;
    const victim = createDb(url, { max: 2, applicationName: victimApp });
    const terminate = () => sql`select pg_terminate_backend(pid) from pg_stat_activity where application_name = ${victimApp}`.execute(db);
    try {
      // Idle clients: the pool's error listener must absorb the termination.
      await sql`select 1`.execute(victim);
      await terminate();
      await new Promise((r) => setTimeout(r, 200));

      // A client checked out mid-transaction: the next statement fails as unavailable.
      const err = await rejectionOf(
        victim.transaction().execute(async (trx) => {
          await sql`select 1`.execute(trx);
          await terminate();
          await new Promise((r) => setTimeout(r, 200));
          await sql`select 2`.execute(trx);
        }),
      );
      expect(isDatabaseUnavailable(err)).toBe(true);

      // The pool replaced its broken clients.
      const { rows } = await sql<{ one: number }>`select 1 as one`.execute(victim);
      expect(rows).toEqual([{ one: 1 }]);
    } finally {
      await victim.destroy();
    }
  });

  it.each([
    [{ code: '57P01' }, true],
    [{ code: '57P02' }, true],
    [{ code: '57P03' }, true],
    [{ code: '08006' }, true],
    [{ code: '08001' }, true],
    [{ code: 'ETIMEDOUT' }, true],
    [{ code: 'ECONNRESET' }, true],
    [new Error('Connection terminated unexpectedly'), true],
    [new Error('wrapped', { cause: Object.assign(new Error('x'), { code: 'ECONNREFUSED' }) }), true],
    [new AggregateError([Object.assign(new Error('x'), { code: 'ECONNREFUSED' })], ''), true],
    [{ code: '23505' }, false],
    [{ code: '40001' }, false],
    [{ code: '42P01' }, false],
    [new Error('something else'), false],
    ['ECONNREFUSED', false],
    [null, false],
    [undefined, false],
  ])('classifies %o as %s', (err, expected) => {
    expect(isDatabaseUnavailable(err)).toBe(expected);
  });
});
