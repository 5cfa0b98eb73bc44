#!/usr/bin/env node
// Applies every service's Postgres role and Redis user, as the admin, at each start.
//
//   node libs/roles/dist/cli.js local     infra/start.sh: passwords generated once into
//                                         .run/service-passwords.json, users set on the running
//                                         Redis, .run/env/<service>.env written for each service
//   node libs/roles/dist/cli.js compose   docker-compose's one-shot `roles`: passwords from the
//                                         environment (.env), an ACL file for Redis to load
//
// Environment: ADMIN_DATABASE_URL (the database's owner), ROLES_PREFIX (default switchyard);
// local: ADMIN_REDIS_URL, RUN_DIR (default .run); compose: REDIS_ACL_FILE, REDIS_ADMIN_PASSWORD
// and one PG_PASSWORD_<SERVICE> / REDIS_PASSWORD_<SERVICE> per service (see passwordVariable).
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SERVICE_NAMES, type ServiceName } from '@switchyard/contracts';
import { Redis } from 'ioredis';
import pg from 'pg';
import { ACCESS, accessName, POSTGRES_SERVICES, passwordVariable, type Store } from './access.js';
import { applyPostgresRoles, roleUrl } from './postgres.js';
import { applyRedisUsers, redisAclFile } from './redis.js';

function required(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}

const prefix = process.env['ROLES_PREFIX'] ?? 'switchyard';
const newPassword = () => randomBytes(24).toString('hex');

// Written beside the target and renamed, so a reader never sees half a file; 0600 as umask 077.
function writePrivate(path: string, text: string, mode = 0o600): void {
  writeFileSync(`${path}.tmp`, text, { mode });
  renameSync(`${path}.tmp`, path);
}

async function postgres(passwords: Partial<Record<ServiceName, string>>): Promise<void> {
  const admin = new pg.Client({ connectionString: required('ADMIN_DATABASE_URL'), connectionTimeoutMillis: 10_000 });
  await admin.connect();
  try {
    const handed = await applyPostgresRoles(admin, { prefix, passwords });
    if (handed.length > 0) console.log(`roles: tables handed to their services' roles: ${handed.join(', ')}`);
  } finally {
    await admin.end();
  }
  console.log(`roles: postgres roles ${POSTGRES_SERVICES.map((s) => accessName(prefix, s)).join(', ')} ready`);
}

async function local(): Promise<void> {
  const runDir = process.env['RUN_DIR'] ?? '.run';
  const file = join(runDir, 'service-passwords.json');
  mkdirSync(join(runDir, 'env'), { recursive: true, mode: 0o700 });
  const kept = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, Partial<Record<Store, string>>>) : {};
  // Generated once and kept: a service restarted alone must still match its role and user.
  const secrets = Object.fromEntries(SERVICE_NAMES.map((s) => [s, { postgres: kept[s]?.postgres ?? newPassword(), redis: kept[s]?.redis ?? newPassword() }])) as Record<
    ServiceName,
    Record<Store, string>
  >;
  writePrivate(file, `${JSON.stringify(secrets, null, 2)}\n`);

  const databaseUrl = required('ADMIN_DATABASE_URL');
  const redisUrl = required('ADMIN_REDIS_URL');
  await postgres(Object.fromEntries(SERVICE_NAMES.map((s) => [s, secrets[s].postgres])));
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    await applyRedisUsers(
      redis,
      SERVICE_NAMES.map((s) => ({ service: s, user: accessName(prefix, s), password: secrets[s].redis })),
    );
  } finally {
    redis.disconnect();
  }
  console.log(`roles: redis users ${SERVICE_NAMES.map((s) => accessName(prefix, s)).join(', ')} ready`);
  for (const s of SERVICE_NAMES) {
    const lines = [`REDIS_URL=${roleUrl(redisUrl, accessName(prefix, s), secrets[s].redis)}`];
    if (ACCESS[s].postgres) lines.push(`DATABASE_URL=${roleUrl(databaseUrl, accessName(prefix, s), secrets[s].postgres)}`);
    writePrivate(join(runDir, 'env', `${s}.env`), `${lines.join('\n')}\n`);
  }
}

async function compose(): Promise<void> {
  await postgres(Object.fromEntries(POSTGRES_SERVICES.map((s) => [s, required(passwordVariable('postgres', s))])));
  const users = SERVICE_NAMES.map((s) => ({ service: s, user: accessName(prefix, s), password: required(passwordVariable('redis', s)) }));
  // Redis runs as another user and reads it; it holds only hashes of long random passwords.
  writePrivate(required('REDIS_ACL_FILE'), redisAclFile(users, { user: `${prefix}_admin`, password: required('REDIS_ADMIN_PASSWORD') }), 0o644);
  console.log(`roles: redis ACL file ${process.env['REDIS_ACL_FILE']} written`);
}

const command = process.argv[2];
const run = command === 'local' ? local : command === 'compose' ? compose : undefined;
if (!run) {
  console.error('usage: cli.js local|compose');
  process.exit(64);
}
run().catch((err: Error) => {
  console.error(`roles: ${err.message}`);
  process.exit(1);
});
