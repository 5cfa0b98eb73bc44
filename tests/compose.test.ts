import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nkeyVariable, SERVICE_NAMES } from '@switchyard/contracts';
import { ACCESS, accessName, passwordVariable, POSTGRES_SERVICES } from '@switchyard/roles';
import { repoRoot } from '@switchyard/testkit';
import { afterAll, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'sy-compose-'));
const envFile = join(dir, 'env');
const readEnv = () =>
  Object.fromEntries(
    readFileSync(envFile, 'utf8')
      .split('\n')
      .filter((l) => /^[A-Z0-9_]+=/.test(l))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
// Only PATH: a variable of the test's own environment would win over the env file.
const compose = (...args: string[]) =>
  execFileSync('docker-compose', ['--env-file', envFile, ...args], { cwd: repoRoot, env: { PATH: process.env['PATH'] ?? '' }, encoding: 'utf8' });

describe('docker-compose.yml', () => {
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('has its secrets generated once into an env file of mode 0600, and kept', () => {
    execFileSync('bash', ['infra/compose-env.sh', envFile], { cwd: repoRoot });
    const first = readEnv();
    expect(statSync(envFile).mode & 0o777).toBe(0o600);
    for (const name of ['ADMIN_API_KEY', 'SECRETS_KEY', 'POSTGRES_PASSWORD', 'REDIS_ADMIN_PASSWORD']) expect(first[name], name).toMatch(/^.{32,}$/);
    for (const s of POSTGRES_SERVICES) expect(first[passwordVariable('postgres', s)]).toMatch(/^[0-9a-f]{48}$/);
    for (const s of SERVICE_NAMES) expect(first[passwordVariable('redis', s)]).toMatch(/^[0-9a-f]{48}$/);
    expect(new Set(Object.values(first)).size).toBe(Object.keys(first).length);
    execFileSync('bash', ['infra/compose-env.sh', envFile], { cwd: repoRoot });
    expect(readEnv()).toEqual(first);
  });

  it('is a valid deployment of the infrastructure, a trace viewer, the roles and the eight services', () => {
    // infra/setup.sh installs docker-compose; a missing binary fails here rather than skipping.
    const out = compose('config');
    for (const service of ['nats', 'postgres', 'redis', 'jaeger', 'roles', ...SERVICE_NAMES]) {
      expect(out).toMatch(new RegExp(`^  ${service}:$`, 'm'));
    }
    // No fixed password any more: the generated one, and each service its own role and user.
    expect(out).not.toContain('switchyard:switchyard@');
    expect(out).toContain(`POSTGRES_PASSWORD: ${readEnv()['POSTGRES_PASSWORD']}`);
  });

  it("connects each service as its own role and Redis user (libs/roles' names and variables)", () => {
    const env = readEnv();
    // docker-compose 1.x prints YAML only; it is Python with PyYAML, so python3 can read it.
    const config = JSON.parse(
      execFileSync('python3', ['-c', 'import sys, yaml, json; print(json.dumps(yaml.safe_load(sys.stdin)))'], { input: compose('config'), encoding: 'utf8' }),
    );
    for (const s of SERVICE_NAMES) {
      const e = config.services[s].environment as Record<string, string>;
      const user = accessName('switchyard', s);
      expect(e['REDIS_URL'], s).toBe(`redis://${user}:${env[passwordVariable('redis', s)]}@redis:6379`);
      if (ACCESS[s].postgres) expect(e['DATABASE_URL'], s).toBe(`postgres://${user}:${env[passwordVariable('postgres', s)]}@postgres:5432/switchyard`);
      else expect(e['DATABASE_URL'], s).toBeUndefined();
      expect(config.services[s].depends_on.roles.condition).toBe('service_completed_successfully');
    }
    const roles = config.services.roles.environment as Record<string, string>;
    for (const s of POSTGRES_SERVICES) expect(roles[passwordVariable('postgres', s)]).toBe(env[passwordVariable('postgres', s)]);
    for (const s of SERVICE_NAMES) expect(roles[passwordVariable('redis', s)]).toBe(env[passwordVariable('redis', s)]);
    expect(config.services.redis.command).toEqual(['redis-server', '--aclfile', '/etc/redis-acl/users.acl']);
  });

  it('refuses to run without the generated secrets, naming the script', () => {
    writeFileSync(join(dir, 'empty'), '');
    const err = (() => {
      try {
        execFileSync('docker-compose', ['--env-file', join(dir, 'empty'), 'config'], { cwd: repoRoot, env: { PATH: process.env['PATH'] ?? '' }, encoding: 'utf8', stdio: 'pipe' });
        return '';
      } catch (e) {
        return String((e as { stderr?: string }).stderr);
      }
    })();
    expect(err).toContain('run infra/compose-env.sh');
  });

  it('runs NATS with the generated configuration, each service with its own key from the env file', () => {
    const env = readEnv();
    const out = compose('config');
    expect(out).toMatch(/infra\/nats\/nats-server\.conf:\/etc\/nats\/switchyard\.conf:ro/);
    expect(out).toMatch(/- -c\n\s+- \/etc\/nats\/switchyard\.conf/);
    for (const service of SERVICE_NAMES) {
      const publicKey = env[nkeyVariable(service)]!;
      const seed = env[nkeyVariable(service).replace('SY_NKEY_', 'SY_NKEY_SEED_')]!;
      expect(publicKey).toMatch(/^U[A-Z2-7]{55}$/);
      expect(seed).toMatch(/^SU[A-Z2-7]{56}$/);
      expect(out).toContain(`${nkeyVariable(service)}: ${publicKey}`);
      expect(out).toContain(`NATS_NKEY_SEED: ${seed}`);
    }
  });
});
