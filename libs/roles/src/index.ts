// Each service's Postgres role and Redis user: the one definition (ACCESS) and the functions
// that apply it. The CLI (dist/cli.js) applies it for infra/start.sh and docker-compose.
export { ACCESS, POSTGRES_SERVICES, accessName, ownedTables, passwordVariable, type ServiceAccess, type Store } from './access.js';
export { applyPostgresRoles, dropPostgresRoles, roleUrl, type ApplyPostgresOptions, type PgAdmin } from './postgres.js';
export { REDIS_COMMON_COMMANDS, applyRedisUsers, deleteRedisUsers, redisAclFile, redisAclRules, sha256Hex, type RedisAdmin, type RedisSecret } from './redis.js';
