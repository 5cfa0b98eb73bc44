import type { ServiceName } from '@switchyard/contracts';
import pg from 'pg';
import { accessName, ownedTables, POSTGRES_SERVICES } from './access.js';

/** The minimal client these functions need (a pg Client or PoolClient). */
export interface PgAdmin {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<{ rows: R[] }>;
}

export interface ApplyPostgresOptions {
  /** Role names are `<prefix>_<service>`. */
  prefix: string;
  /** Each service's password; a role is created, or its password set (rotation), from it. */
  passwords: Partial<Record<ServiceName, string>>;
}

const ident = (s: string) => pg.escapeIdentifier(s);
const literal = (s: string) => pg.escapeLiteral(s);

/**
 * Run as the database's admin (its owner, with CREATEROLE, or a superuser) connected to the
 * database. For each service with Postgres state: its login role with the given password; the
 * right to connect and to create tables in schema public; the admin made a member (so it can
 * hand tables over and read every table); and the hand-over of the service's tables still
 * owned by another role (a database from before the roles, where one role ran every
 * migration). Idempotent; one transaction. Returns the tables handed over.
 */
export async function applyPostgresRoles(admin: PgAdmin, opts: ApplyPostgresOptions): Promise<string[]> {
  const handed: string[] = [];
  await admin.query('begin');
  try {
    const db = (await admin.query<{ db: string }>('select current_database() as db')).rows[0]!.db;
    // Before PG15 every role could create in public; only the owning roles may now.
    await admin.query('revoke create on schema public from public');
    for (const service of POSTGRES_SERVICES) {
      const password = opts.passwords[service];
      if (!password) throw new Error(`no Postgres password for ${service}`);
      const role = accessName(opts.prefix, service);
      const exists = (await admin.query('select 1 from pg_roles where rolname = $1', [role])).rows.length > 0;
      await admin.query(`${exists ? 'alter' : 'create'} role ${ident(role)} login noinherit password ${literal(password)}`);
      await admin.query(`grant ${ident(role)} to current_user`);
      await admin.query(`grant connect on database ${ident(db)} to ${ident(role)}`);
      await admin.query(`grant usage, create on schema public to ${ident(role)}`);
      const stale = await admin.query<{ name: string }>(
        `select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where n.nspname = 'public' and c.relkind in ('r', 'p') and c.relname = any($1) and c.relowner <> (select oid from pg_roles where rolname = $2)`,
        [ownedTables(service), role],
      );
      for (const { name } of stale.rows) {
        try {
          await admin.query(`alter table public.${ident(name)} owner to ${ident(role)}`);
        } catch (err) {
          throw new Error(
            `cannot hand table ${name} to ${role} (${(err as Error).message}); run as the table's owner or a superuser: ALTER TABLE public.${name} OWNER TO ${role}`,
            {
              cause: err,
            },
          );
        }
        handed.push(name);
      }
    }
    await admin.query('commit');
  } catch (err) {
    await admin.query('rollback').catch(() => undefined);
    throw err;
  }
  return handed;
}

/** Drops the roles (after their database: a role that still owns objects cannot go). */
export async function dropPostgresRoles(admin: PgAdmin, prefix: string): Promise<void> {
  for (const service of POSTGRES_SERVICES) await admin.query(`drop role if exists ${ident(accessName(prefix, service))}`);
}

/** `url` (the admin's) with the service's role and password instead. */
export function roleUrl(url: string, role: string, password: string): string {
  const u = new URL(url);
  u.username = encodeURIComponent(role);
  u.password = encodeURIComponent(password);
  return u.toString();
}
