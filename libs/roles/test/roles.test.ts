import { describe, expect, it } from 'vitest';
import { ACCESS, accessName, ownedTables, passwordVariable, POSTGRES_SERVICES, redisAclFile, redisAclRules, roleUrl, sha256Hex } from '../src/index.js';

describe('names', () => {
  it('puts the prefix before the service, with underscores (valid as Postgres role and Redis user)', () => {
    expect(accessName('switchyard', 'api-gateway')).toBe('switchyard_api_gateway');
    expect(accessName('sy_it_0a1b2c3d4e', 'exit-node-manager')).toBe('sy_it_0a1b2c3d4e_exit_node_manager');
  });

  it('names the compose variable of each password per store', () => {
    expect(passwordVariable('postgres', 'sleep-controller')).toBe('PG_PASSWORD_SLEEP_CONTROLLER');
    expect(passwordVariable('redis', 'load-balancer')).toBe('REDIS_PASSWORD_LOAD_BALANCER');
  });

  it('puts a role and password into a URL, escaped', () => {
    expect(roleUrl('postgres://switchyard:switchyard@127.0.0.1:5432/db', 'db_api_gateway', 'a/b@c')).toBe('postgres://db_api_gateway:a%2Fb%40c@127.0.0.1:5432/db');
    expect(roleUrl('redis://127.0.0.1:6379', 'u', 'p')).toBe('redis://u:p@127.0.0.1:6379');
  });
});

describe('the Postgres side of ACCESS', () => {
  it('gives a role to the five services that keep state in Postgres', () => {
    expect(POSTGRES_SERVICES).toEqual(['api-gateway', 'exit-node-manager', 'sleep-controller', 'socket-activator', 'tunnel-manager']);
  });

  it('lets no table have two owning services', () => {
    const all = POSTGRES_SERVICES.flatMap(ownedTables);
    expect(new Set(all).size).toBe(all.length);
  });

  it('counts the migration history and its lock among the tables a role owns', () => {
    expect(ownedTables('sleep-controller')).toEqual(['sleep_policies', 'sleep_controller_migrations', 'sleep_controller_migrations_lock']);
    expect(ownedTables('load-balancer')).toEqual([]);
    // Born with its own role: it creates its tables as itself, nothing to hand over.
    expect(ownedTables('tunnel-manager')).toEqual([]);
  });
});

describe('Redis ACL rules', () => {
  it('starts from reset and gives read-write and read-only patterns', () => {
    const rules = redisAclRules('api-gateway', { password: 'pw' });
    expect(rules.slice(0, 3)).toEqual(['reset', 'on', '>pw']);
    expect(rules).toContain('~switchyard:node-adds:*');
    expect(rules).toContain('%R~acl:*');
    expect(rules).not.toContain('~acl:*');
    expect(rules).toContain('+evalsha');
    // INFO (ioredis's ready check) is in @dangerous: it must come back after that is taken away.
    expect(rules.lastIndexOf('+info')).toBeGreaterThan(rules.indexOf('-@dangerous'));
  });

  it('lets only the load balancer and the activator write acl:*, and only the load balancer lb:*', () => {
    const writers = (pattern: string) => (Object.keys(ACCESS) as (keyof typeof ACCESS)[]).filter((s) => ACCESS[s].redis.keys.includes(pattern));
    expect(writers('lb:*')).toEqual(['load-balancer']);
    expect(writers('acl:*')).toEqual(['load-balancer', 'socket-activator']);
    expect(writers('health:*')).toEqual(['health-monitor']);
  });

  it('lets a service without keys only connect', () => {
    const rules = redisAclRules('tunnel-manager', { password: 'pw' });
    expect(rules.slice(0, 5)).toEqual(['reset', 'on', '>pw', 'resetchannels', '-@all']);
    expect(rules).toContain('+client|setname');
    // @connection would also grant CLIENT PAUSE, KILL and LIST.
    expect(rules.filter((r) => r.includes('@') && r !== '-@all')).toEqual([]);
  });

  it('keeps only hashes in an ACL file, with the default user off', () => {
    const file = redisAclFile([{ service: 'health-monitor', user: 'sy_health_monitor', password: 'secret-one' }], { user: 'sy_admin', password: 'secret-two' });
    expect(file).not.toContain('secret-');
    expect(file).toContain('user default off');
    expect(file).toContain(`user sy_admin on #${sha256Hex('secret-two')} ~* &* +@all`);
    expect(file).toContain(`user sy_health_monitor reset on #${sha256Hex('secret-one')} ~health:* resetchannels`);
  });
});
