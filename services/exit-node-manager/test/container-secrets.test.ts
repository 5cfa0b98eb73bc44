import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { PoolSpec } from '@switchyard/contracts';
import { seal } from '@switchyard/secrets';
import { OrderFailure } from '@switchyard/service-kit';
import { containerSpec, type SpecConfig } from '../src/container-spec.js';

const key = randomBytes(32);
const config: SpecConfig = { exitNodeImage: 'switchyard/exit-node:dev', publishHost: '127.0.0.1', secretsKey: key };
const spec = (secretEnv: Record<string, string>): PoolSpec => ({
  name: 'vault',
  kind: 'app',
  image: 'switchyard/http-app:dev',
  nodes: { min: 1, max: 1 },
  ports: [{ name: 'main', containerPort: 8080 }],
  env: { PLAIN: 'visible' },
  secretEnv,
});
const build = (s: PoolSpec, c: SpecConfig = config) =>
  containerSpec({ tenantId: '0c0ffee0-1234-4abc-8def-0123456789ab', id: '11111111-2222-4333-8444-555555555555', spec: s }, { id: 'n1', ordinal: 0, hostPorts: { main: 41000 } }, c);

describe('secretEnv in the container spec', () => {
  it('opens each sealed value into the environment, next to the plain ones', () => {
    const env = build(spec({ API_TOKEN: seal('s3cret', key), DB_PASSWORD: seal('pa55', key) })).Env;
    expect(env).toEqual(expect.arrayContaining(['PLAIN=visible', 'API_TOKEN=s3cret', 'DB_PASSWORD=pa55']));
  });

  it('fails the order naming the variable, never its value, when the value cannot be opened', () => {
    const other = seal('s3cret', randomBytes(32));
    const failure = (() => {
      try {
        build(spec({ API_TOKEN: other }));
      } catch (err) {
        return err as Error;
      }
    })();
    expect(failure).toBeInstanceOf(OrderFailure);
    expect(failure!.message).toMatch(/^secretEnv\.API_TOKEN: cannot open the sealed value/);
    expect(failure!.message).not.toContain('s3cret');
    // Plaintext that reached the manager unsealed is refused, not passed on.
    expect(() => build(spec({ API_TOKEN: 's3cret' }))).toThrow(/^secretEnv\.API_TOKEN: not a sealed value/);
  });

  it('without SECRETS_KEY a pool with secrets gets no container, and one without is unaffected', () => {
    const { secretsKey: _, ...keyless } = config;
    expect(() => build(spec({ API_TOKEN: seal('s3cret', key) }), keyless)).toThrow(/secretEnv\.API_TOKEN: this exit-node-manager has no SECRETS_KEY/);
    expect(build(spec({}), keyless).Env).toContain('PLAIN=visible');
  });
});
