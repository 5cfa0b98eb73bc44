import { createHash } from 'node:crypto';
import type { ServiceName } from '@switchyard/contracts';
import { ACCESS } from './access.js';

/**
 * What every service's user may run on its own keys: connect (AUTH, HELLO, PING, SELECT), INFO
 * (ioredis's ready check), reads and writes, but nothing dangerous (FLUSHALL, KEYS, CONFIG,
 * DEBUG, FUNCTION ...), no scripting and no pub/sub unless its row adds them. A service without keys
 * may only connect (and ask INFO).
 */
/**
 * What a client needs to connect (ioredis: AUTH/HELLO, CLIENT SETNAME, SELECT, the INFO ready
 * check, QUIT). Named one by one: @connection also holds CLIENT PAUSE, KILL and LIST, with which
 * one service could freeze or cut off every other.
 */
export const REDIS_CONNECTION_COMMANDS = ['+auth', '+hello', '+ping', '+echo', '+select', '+reset', '+quit', '+client|setname', '+client|getname', '+client|id', '+info'] as const;
// Order matters: INFO is in @dangerous, so it is added back after; @write holds FUNCTION
// LOAD/FLUSH (server-wide), hence -@scripting, and a row adds back the scripting it needs.
// MULTI/EXEC (@transaction): rate-limiter-flexible reads a budget in one; each command inside is
// still checked against the user's rules.
export const REDIS_COMMON_COMMANDS = ['-@all', ...REDIS_CONNECTION_COMMANDS, '+@read', '+@write', '+@transaction', '-@dangerous', '-@scripting', '+info', '+select'] as const;

/** `password` as SETUSER takes it (`>clear`) or as an ACL file should keep it (`#sha256`). */
export type RedisSecret = { password: string } | { sha256: string };

/**
 * The ACL rules of a service's user, from `reset` (so re-applying drops rules it no longer
 * has) to its commands: `~pattern` read and write, `%R~pattern` read only.
 */
export function redisAclRules(service: ServiceName, secret: RedisSecret): string[] {
  const { keys, readKeys, commands } = ACCESS[service].redis;
  const pass = 'password' in secret ? `>${secret.password}` : `#${secret.sha256}`;
  const keyRules = [...keys.map((k) => `~${k}`), ...readKeys.map((k) => `%R~${k}`)];
  const commandRules = keyRules.length === 0 ? ['-@all', ...REDIS_CONNECTION_COMMANDS] : [...REDIS_COMMON_COMMANDS, ...commands];
  return ['reset', 'on', pass, ...keyRules, 'resetchannels', ...commandRules];
}

export const sha256Hex = (password: string) => createHash('sha256').update(password).digest('hex');

/** The minimal client these functions need (an ioredis client satisfies it). */
export interface RedisAdmin {
  call(command: string, ...args: string[]): Promise<unknown>;
}

/** Creates or updates each named user with its service's rules (ACL SETUSER). */
export async function applyRedisUsers(redis: RedisAdmin, users: ReadonlyArray<{ service: ServiceName; user: string; password: string }>): Promise<void> {
  for (const u of users) await redis.call('ACL', 'SETUSER', u.user, ...redisAclRules(u.service, { password: u.password }));
}

/** Deletes users (ACL DELUSER); a missing one is no error. */
export async function deleteRedisUsers(redis: RedisAdmin, users: readonly string[]): Promise<void> {
  if (users.length > 0) await redis.call('ACL', 'DELUSER', ...users);
}

/**
 * An ACL file (redis-server --aclfile) with the services' users, an admin user and the default
 * user off, for a Redis of the deployment's own. Passwords are kept as SHA-256 hashes.
 */
export function redisAclFile(users: ReadonlyArray<{ service: ServiceName; user: string; password: string }>, admin: { user: string; password: string }): string {
  // Redis refuses an ACL file with comments: every line is a user.
  const lines = [
    'user default off resetkeys resetchannels -@all',
    `user ${admin.user} on #${sha256Hex(admin.password)} ~* &* +@all`,
    ...users.map((u) => `user ${u.user} ${redisAclRules(u.service, { sha256: sha256Hex(u.password) }).join(' ')}`),
  ];
  return `${lines.join('\n')}\n`;
}
