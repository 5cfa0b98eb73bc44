import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nkeyVariable, SERVICE_NAMES } from '@switchyard/contracts';
import { repoRoot } from '@switchyard/testkit';

/** An env file as the first run makes it (infra/nats/identities.mjs), in a directory of the test's own. */
function identitiesEnvFile(): { file: string; vars: Record<string, string>; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'sy-compose-'));
  const file = join(dir, '.env');
  execFileSync(process.execPath, ['infra/nats/identities.mjs', 'env-file', file], { cwd: repoRoot });
  return { file, vars: identitiesFrom(file), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

const composeConfig = (args: string[]) =>
  execFileSync('docker-compose', [...args, 'config'], {
    cwd: repoRoot,
    env: { ...process.env, ADMIN_API_KEY: 'compose-config-check-key-000000' },
    encoding: 'utf8',
    stdio: 'pipe',
  });

describe('docker-compose.yml', () => {
  it('is a valid deployment of the infrastructure, a trace viewer and the eight services', () => {
    // infra/setup.sh installs docker-compose; a missing binary fails here rather than skipping.
    const env = identitiesEnvFile();
    const out = composeConfig(['--env-file', env.file]);
    env.cleanup();
    for (const service of [
      'nats',
      'postgres',
      'redis',
      'jaeger',
      'api-gateway',
      'exit-node-manager',
      'health-monitor',
      'load-balancer',
      'sleep-controller',
      'socket-activator',
      'tunnel-manager',
      'storage-sync',
    ]) {
      expect(out).toMatch(new RegExp(`^  ${service}:$`, 'm'));
    }
  });

  it('runs NATS with the generated configuration, each service with its own key from the env file made on first run', () => {
    const env = identitiesEnvFile();
    try {
      expect(statSync(env.file).mode & 0o777).toBe(0o600);
      const out = composeConfig(['--env-file', env.file]);
      expect(out).toMatch(/infra\/nats\/nats-server\.conf:\/etc\/nats\/switchyard\.conf:ro/);
      expect(out).toMatch(/- -c\n\s+- \/etc\/nats\/switchyard\.conf/);
      for (const service of SERVICE_NAMES) {
        const publicKey = env.vars[nkeyVariable(service)]!;
        const seed = env.vars[nkeyVariable(service).replace('SY_NKEY_', 'SY_NKEY_SEED_')]!;
        expect(publicKey).toMatch(/^U[A-Z2-7]{55}$/);
        expect(seed).toMatch(/^SU[A-Z2-7]{56}$/);
        expect(out).toContain(`${nkeyVariable(service)}: ${publicKey}`);
        expect(out).toContain(`NATS_NKEY_SEED: ${seed}`);
      }
      // A second run keeps the keys it made.
      execFileSync(process.execPath, ['infra/nats/identities.mjs', 'env-file', env.file], { cwd: repoRoot });
      expect(identitiesFrom(env.file)).toEqual(env.vars);
    } finally {
      env.cleanup();
    }
  });

  it('does not start without the identities, and says how to make them', () => {
    const empty = mkdtempSync(join(tmpdir(), 'sy-compose-'));
    writeFileSync(join(empty, '.env'), '');
    try {
      expect(() => composeConfig(['--env-file', join(empty, '.env')])).toThrow(/infra\/nats\/identities\.mjs env-file \.env/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});

function identitiesFrom(file: string): Record<string, string> {
  return Object.fromEntries(
    readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => /^[A-Z0-9_]+=/.test(l))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
}
