import { Kysely, Migrator, PostgresDialect, type Migration } from 'kysely';
import pg from 'pg';

export { sql } from 'kysely';
export type { Kysely, Migration, Transaction } from 'kysely';
export type { ColumnType, CreatedAt, Generated, Insertable, Json, Selectable, UpdatedAt } from './columns.js';

export interface CreateDbOptions {
  /** Pool size; defaults to 10. */
  max?: number;
  /** Shown in pg_stat_activity, so an operator can tell which service holds a connection. */
  applicationName?: string;
}

export interface MigrateOptions {
  migrations: Record<string, Migration>;
  /** The owning service's migration history table; `<table>_lock` is its lock table. */
  table: string;
}

// A dead or unreachable database should fail a request in seconds, not hang it.
const CONNECT_TIMEOUT_MS = 3_000;

function warnConnectionLost(err: Error): void {
  process.emitWarning(`postgres connection lost: ${err.message}`, { code: 'SWITCHYARD_DB_CONNECTION_LOST' });
}

/**
 * Creates a Kysely instance over a pg Pool. Call `db.destroy()` to close the pool.
 */
export function createDb<DB>(url: string, opts: CreateDbOptions = {}): Kysely<DB> {
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.max ?? 10,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    ...(opts.applicationName !== undefined ? { application_name: opts.applicationName } : {}),
  });
  // When Postgres restarts, every idle client errors; the pool drops them and re-emits the
  // error on itself, which would be an uncaught 'error' event (a crash) without a listener.
  pool.on('error', warnConnectionLost);
  // A client checked out by kysely has no pool listener, so a backend terminated between two
  // queries of a transaction would crash the process too. The caller still sees the failure:
  // the in-flight or next query on that client rejects, and the pool discards it on release.
  pool.on('connect', (client) => {
    client.on('error', () => {});
  });
  return new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
}

// Migrations run in name order, so a name without the timestamp prefix would run out of turn.
const MIGRATION_NAME = /^\d{4}_\d{2}_\d{2}_\d{4}_\w+$/;

/**
 * Applies every pending migration in one transaction and records them in `opts.table`, so each
 * service keeps its own history in a shared database. Throws naming the failing migration;
 * the original error is the `cause`.
 */
// biome-ignore lint/suspicious/noExplicitAny: a service passes its typed db, and migrations describe schemas it does not have yet.
export async function migrateToLatest(db: Kysely<any>, opts: MigrateOptions): Promise<void> {
  const misnamed = Object.keys(opts.migrations).filter((name) => !MIGRATION_NAME.test(name));
  if (misnamed.length > 0) {
    throw new Error(`migrations for ${opts.table} must be named YYYY_MM_DD_NNNN_description: ${misnamed.join(', ')}`);
  }

  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => opts.migrations },
    migrationTableName: opts.table,
    migrationLockTableName: `${opts.table}_lock`,
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error === undefined) return;

  const reason = error instanceof Error ? error.message : String(error);
  const failed = results?.find((r) => r.status === 'Error');
  const where = failed ? `migration ${failed.migrationName}` : `migrating ${opts.table}`;
  throw new Error(`${where} failed: ${reason}`, { cause: error });
}

const UNAVAILABLE_ERRNOS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  // A compose service name stops resolving while its container is down.
  'ENOTFOUND',
  'EAI_AGAIN',
]);

// 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now (starting up or in
// recovery), 53300 too_many_connections; class 08 is "connection exception".
const UNAVAILABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300']);

const UNAVAILABLE_MESSAGES = [
  /^Connection terminated/, // pg: the socket closed, unexpectedly or during connect timeout
  /timeout exceeded when trying to connect/, // pg-pool: no connection within connectionTimeoutMillis
  /Client has encountered a connection error and is not queryable/,
];

function isUnavailableOne(err: object): boolean {
  const { code, message } = err as { code?: unknown; message?: unknown };
  if (typeof code === 'string') {
    if (UNAVAILABLE_ERRNOS.has(code) || UNAVAILABLE_SQLSTATES.has(code) || /^08[0-9A-Z]{3}$/.test(code)) {
      return true;
    }
  }
  return typeof message === 'string' && UNAVAILABLE_MESSAGES.some((re) => re.test(message));
}

/**
 * True when `err` means Postgres could not be reached or dropped the connection (worth a
 * retry or a 503), false for errors the statement itself caused (constraints, syntax, ...).
 * Looks through `cause` chains and AggregateError members, as Node wraps dual-stack failures.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  const seen = new Set<unknown>();
  const pending: unknown[] = [err];
  while (pending.length > 0) {
    const current = pending.pop();
    if (typeof current !== 'object' || current === null || seen.has(current)) continue;
    seen.add(current);
    if (isUnavailableOne(current)) return true;
    const { cause, errors } = current as { cause?: unknown; errors?: unknown };
    pending.push(cause);
    if (Array.isArray(errors)) pending.push(...(errors as unknown[]));
  }
  return false;
}

/** The constraint a statement broke when `err` is a unique violation (23505), else undefined. */
export function uniqueViolationOf(err: unknown): string | undefined {
  const e = err as { code?: unknown; constraint?: unknown } | null;
  if (typeof e !== 'object' || e === null || e.code !== '23505') return undefined;
  return typeof e.constraint === 'string' ? e.constraint : '';
}
