import { randomBytes } from 'node:crypto';
import pg from 'pg';

const adminUrl = process.env['TEST_DATABASE_URL'] ?? 'postgres://switchyard:switchyard@127.0.0.1:5432/switchyard_test';

export interface TestDatabase {
  readonly name: string;
  readonly url: string;
  /** The URL with another host port, e.g. one of a CuttableLink in front of Postgres. */
  urlVia(port: number): string;
  query<T extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<T[]>;
  drop(): Promise<void>;
}

/** A database of the test file's own, created empty; the services migrate it at start. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `sy_it_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const pool = new pg.Pool({ connectionString: url.toString(), max: 2 });
  pool.on('error', () => undefined);
  return {
    name,
    url: url.toString(),
    urlVia(port) {
      const u = new URL(url);
      u.host = `127.0.0.1:${port}`;
      return u.toString();
    },
    async query(text, values) {
      return (await pool.query(text, values)).rows;
    },
    async drop() {
      await pool.end();
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`);
      await c.end();
    },
  };
}

export const postgresPort = Number(new URL(adminUrl).port || 5432);
