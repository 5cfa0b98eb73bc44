import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '@switchyard/testkit';

describe('docker-compose.yml', () => {
  it('is a valid deployment of the infrastructure, a trace viewer and the eight services', () => {
    // infra/setup.sh installs docker-compose; a missing binary fails here rather than skipping.
    const out = execFileSync('docker-compose', ['config'], { cwd: repoRoot, env: { ...process.env, ADMIN_API_KEY: 'compose-config-check-key-000000' }, encoding: 'utf8' });
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
});
