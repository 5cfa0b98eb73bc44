import { randomBytes } from 'node:crypto';
import type { ServiceName } from '@switchyard/contracts';
import { accessName, applyPostgresRoles, dropPostgresRoles, POSTGRES_SERVICES, roleUrl } from '@switchyard/roles';
import pg from 'pg';

const adminUrl = process.env['TEST_DATABASE_URL'] ?? 'postgres://switchyard:switchyard@127.0.0.1:5432/switchyard_test';

export interface TestDatabase {
  readonly name: string;
  /** The admin's URL (the database's owner, a member of every service role: reads every table). */
  readonly url: string;
  /** The URL of a service's own role (`<database>_<service>`), as the service connects. */
  urlFor(service: ServiceName): string;
  /** The URL with another host port, e.g. one of a CuttableLink in front of Postgres; the service's role when one is named. */
  urlVia(port: number, service?: ServiceName): string;
  /** Applies the roles again (libs/roles): hands over tables the admin made. Returns those tables. */
  applyRoles(): Promise<string[]>;
  query<T extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<T[]>;
  drop(): Promise<void>;
}

/** One client connection to `url` for `fn`, ended whatever `fn` does. */
export async function withPgClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/**
 * A database of the test file's own, created empty, with a Postgres role per owning service
 * (named after the database, random passwords, dropped with it): roles are cluster-wide and
 * files run in parallel, so none is shared. The services migrate it at start, as their roles.
 */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `sy_it_${randomBytes(5).toString('hex')}`;
  await withPgClient(adminUrl, (c) => c.query(`create database ${name}`));
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const passwords = Object.fromEntries(POSTGRES_SERVICES.map((s) => [s, randomBytes(16).toString('hex')])) as Record<ServiceName, string>;
  const applyRoles = () => withPgClient(url.toString(), (c) => applyPostgresRoles(c, { prefix: name, passwords }));
  const dropRoles = () => withPgClient(adminUrl, (c) => dropPostgresRoles(c, name));
  try {
    await applyRoles();
  } catch (err) {
    await withPgClient(adminUrl, (c) => c.query(`drop database if exists ${name} with (force)`)).catch(() => undefined);
    await dropRoles().catch(() => undefined);
    throw err;
  }
  const urlFor = (service: ServiceName) => {
    const password = passwords[service];
    if (!password) throw new Error(`${service} has no Postgres role (libs/roles ACCESS)`);
    return roleUrl(url.toString(), accessName(name, service), password);
  };
  const pool = new pg.Pool({ connectionString: url.toString(), max: 2 });
  pool.on('error', () => undefined);
  return {
    name,
    url: url.toString(),
    urlFor,
    urlVia(port, service) {
      const u = new URL(service ? urlFor(service) : url);
      u.host = `127.0.0.1:${port}`;
      return u.toString();
    },
    applyRoles,
    async query(text, values) {
      return (await pool.query(text, values)).rows;
    },
    async drop() {
      await pool.end();
      await withPgClient(adminUrl, (c) => c.query(`drop database if exists ${name} with (force)`));
      await dropRoles();
    },
  };
}

export const postgresPort = Number(new URL(adminUrl).port || 5432);
