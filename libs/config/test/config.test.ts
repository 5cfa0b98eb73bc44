import Type from 'typebox';
import { afterEach, describe, expect, expectTypeOf, it, vi } from 'vitest';
import { CommonEnv, ConfigError, DatabaseEnv, env, loadConfig, loadConfigOrExit, redactUrl } from '../src/index.js';

const ServiceEnv = Type.Object({
  ...CommonEnv,
  ...DatabaseEnv,
  API_PORT: env.port(8080),
});

function issuesOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('applies every default when nothing is set', () => {
    const config = loadConfig(ServiceEnv, {});
    expect(config).toEqual({
      NATS_URL: 'nats://127.0.0.1:4222',
      REDIS_URL: 'redis://127.0.0.1:6379',
      LOG_LEVEL: 'info',
      SHUTDOWN_TIMEOUT_MS: 10000,
      DATABASE_URL: 'postgres://switchyard:switchyard@127.0.0.1:5432/switchyard',
      API_PORT: 8080,
    });
    expect('OTEL_EXPORTER_OTLP_ENDPOINT' in config).toBe(false);
  });

  it('types the result from the schema', () => {
    const config = loadConfig(ServiceEnv, {});
    expectTypeOf(config.API_PORT).toEqualTypeOf<number>();
    expectTypeOf(config.NATS_URL).toEqualTypeOf<string>();
    expectTypeOf(config.LOG_LEVEL).toEqualTypeOf<'debug' | 'info' | 'warn' | 'error'>();
    expectTypeOf(config.OTEL_EXPORTER_OTLP_ENDPOINT).toEqualTypeOf<string | undefined>();
  });

  it('reads and converts good values', () => {
    const config = loadConfig(
      Type.Object({
        ...CommonEnv,
        ...DatabaseEnv,
        API_PORT: env.port(8080),
        DEBUG_SQL: env.bool(false),
        RATIO_LIMIT: env.int({ minimum: -5, maximum: 5 }),
        NAME: env.string({ minLength: 2 }),
      }),
      {
        NATS_URL: 'nats://nats.internal:4222',
        REDIS_URL: 'rediss://cache:6380/1',
        LOG_LEVEL: 'debug',
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
        SHUTDOWN_TIMEOUT_MS: '2500',
        DATABASE_URL: 'postgresql://u:p@db/x',
        API_PORT: '9090',
        DEBUG_SQL: 'TRUE',
        RATIO_LIMIT: '-3',
        NAME: 'gw',
        UNRELATED: 'ignored',
      },
    );
    expect(config).toEqual({
      NATS_URL: 'nats://nats.internal:4222',
      REDIS_URL: 'rediss://cache:6380/1',
      LOG_LEVEL: 'debug',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
      SHUTDOWN_TIMEOUT_MS: 2500,
      DATABASE_URL: 'postgresql://u:p@db/x',
      API_PORT: 9090,
      DEBUG_SQL: true,
      RATIO_LIMIT: -3,
      NAME: 'gw',
    });
  });

  it('accepts 1/0 and false for booleans', () => {
    const schema = Type.Object({ A: env.bool(), B: env.bool(), C: env.bool(true) });
    expect(loadConfig(schema, { A: '1', B: '0', C: 'false' })).toEqual({ A: true, B: false, C: false });
  });

  it('treats an empty variable as unset', () => {
    const config = loadConfig(ServiceEnv, { API_PORT: '', OTEL_EXPORTER_OTLP_ENDPOINT: '' });
    expect(config.API_PORT).toBe(8080);
    expect(config.OTEL_EXPORTER_OTLP_ENDPOINT).toBeUndefined();
  });

  it('does not read process.env when an env is given', () => {
    vi.stubEnv('API_PORT', 'not-a-port');
    expect(loadConfig(ServiceEnv, {}).API_PORT).toBe(8080);
    vi.unstubAllEnvs();
  });

  it('formats a bad URL with the expected protocol', () => {
    const err = issuesOf(() => loadConfig(ServiceEnv, { NATS_URL: 'foo' }));
    expect(err.issues).toEqual([{ variable: 'NATS_URL', expected: 'a nats:// URL', received: 'foo' }]);
    expect(err.message).toBe('NATS_URL: expected a nats:// URL, got "foo"');
  });

  it('rejects a URL of the wrong protocol', () => {
    const err = issuesOf(() => loadConfig(ServiceEnv, { REDIS_URL: 'http://cache:6379', OTEL_EXPORTER_OTLP_ENDPOINT: 'grpc://c:4317' }));
    expect(err.message.split('\n')).toEqual([
      'REDIS_URL: expected a redis:// or rediss:// URL, got "http://cache:6379"',
      'OTEL_EXPORTER_OTLP_ENDPOINT: expected an http:// or https:// URL, got "grpc://c:4317"',
    ]);
  });

  it('reports a missing required variable', () => {
    const schema = Type.Object({
      DATABASE_URL: env.url(['postgres'], { description: 'a postgres:// URL' }),
      API_PORT: env.port(),
    });
    const err = issuesOf(() => loadConfig(schema, {}));
    expect(err.message.split('\n')).toEqual(['DATABASE_URL: missing, expected a postgres:// URL', 'API_PORT: missing, expected a port number between 1 and 65535']);
    expect(err.issues.map((i) => i.received)).toEqual([undefined, undefined]);
  });

  it.each([
    ['abc', 'not a number'],
    ['80.5', 'a fraction is not silently truncated'],
    ['0x50', 'hex is not a port'],
    [' 80', 'whitespace is not ignored'],
    ['0', 'below the range'],
    ['65536', 'above the range'],
    ['true', 'a boolean is not 1'],
  ])('rejects port %j (%s)', (value) => {
    const err = issuesOf(() => loadConfig(ServiceEnv, { API_PORT: value }));
    expect(err.issues).toEqual([{ variable: 'API_PORT', expected: 'a port number between 1 and 65535', received: value }]);
  });

  it('rejects bad booleans, enums, ints and short strings', () => {
    const schema = Type.Object({
      FLAG: env.bool(false),
      LOG_LEVEL: CommonEnv.LOG_LEVEL,
      WORKERS: env.int({ minimum: 1, maximum: 8 }),
      MIN_ONLY: env.int({ minimum: 0 }),
      LABEL: env.string({ minLength: 8 }),
      MODE: env.enumOf(['a', 'b'], 'a'),
    });
    const err = issuesOf(() => loadConfig(schema, { FLAG: 'yes', LOG_LEVEL: 'verbose', WORKERS: '9', MIN_ONLY: '-1', LABEL: 'short', MODE: 'c' }));
    expect(err.message.split('\n')).toEqual([
      'FLAG: expected true, false, 1 or 0, got "yes"',
      'LOG_LEVEL: expected one of debug, info, warn, error, got "verbose"',
      'WORKERS: expected an integer between 1 and 8, got "9"',
      'MIN_ONLY: expected an integer >= 0, got "-1"',
      'LABEL: expected a string of at least 8 characters, got "short"',
      'MODE: expected one of a, b, got "c"',
    ]);
  });

  it('lists every bad variable at once, one issue each, in schema order', () => {
    const err = issuesOf(() =>
      loadConfig(ServiceEnv, {
        API_PORT: 'http',
        DATABASE_URL: 'mysql://x',
        NATS_URL: 'not a url',
        SHUTDOWN_TIMEOUT_MS: '-5',
        LOG_LEVEL: 'loud',
      }),
    );
    expect(err.issues.map((i) => i.variable)).toEqual(['NATS_URL', 'LOG_LEVEL', 'SHUTDOWN_TIMEOUT_MS', 'DATABASE_URL', 'API_PORT']);
    expect(err.message).toContain('DATABASE_URL: expected a postgres:// URL, got "mysql://x"');
    expect(err.message).toContain('SHUTDOWN_TIMEOUT_MS: expected an integer >= 0, got "-5"');
  });

  it.each(['ADMIN_API_KEY', 'SECRETS_KEY', 'COMPAT_API_PASSWORD', 'TUNNEL_TOKEN', 'PROXY_USERS', 'CLIENT_SECRET'])('never prints the value of %s', (name) => {
    const schema = Type.Object({ [name]: env.string({ minLength: 24 }) });
    const err = issuesOf(() => loadConfig(schema, { [name]: 'hunter2-is-my-password' }));
    expect(err.message).not.toContain('hunter2');
    expect(JSON.stringify(err.issues)).not.toContain('hunter2');
    expect(err.message).toBe(`${name}: expected a string of at least 24 characters, got a value of 22 characters (not shown: ${name} holds a secret)`);
  });

  it('prints a bad URL without its credentials', () => {
    const err = issuesOf(() => loadConfig(ServiceEnv, { DATABASE_URL: 'mysql://app:s3cret-pw@db:3306/x', NATS_URL: 'nats//user:s3cret-pw@broker' }));
    expect(err.message).not.toContain('s3cret-pw');
    expect(err.message).toContain('DATABASE_URL: expected a postgres:// URL, got "mysql://***@db:3306/x"');
  });

  it('prefers an `expected` annotation, then the description, then the typebox message', () => {
    const schema = Type.Object({
      HOST: Type.String({ pattern: '^[a-z.]+$', expected: 'a lowercase host name', description: 'ignored' }),
      ZONE: Type.String({ pattern: '^z', description: 'a zone starting with z' }),
      COUNT: Type.Integer({ minimum: 3 }),
    });
    const err = issuesOf(() => loadConfig(schema, { HOST: 'A', ZONE: 'a', COUNT: '2' }));
    expect(err.issues).toEqual([
      { variable: 'HOST', expected: 'a lowercase host name', received: 'A' },
      { variable: 'ZONE', expected: 'a zone starting with z', received: 'a' },
      { variable: 'COUNT', expected: 'must be >= 3', received: '2' },
    ]);
  });

  it('names the protocols in the refine message when no description is shown', () => {
    const schema = Type.Object({ U: env.url(['amqp', 'amqps']) });
    const err = issuesOf(() => loadConfig(schema, { U: 'http://x' }));
    expect(err.issues[0]?.expected).toBe('an amqp:// or amqps:// URL');
  });
});

describe('loadConfigOrExit', () => {
  afterEach(() => vi.restoreAllMocks());

  it('returns the config when it is valid', () => {
    expect(loadConfigOrExit('api-gateway', ServiceEnv, { API_PORT: '1' }).API_PORT).toBe(1);
  });

  it('prints every issue under the service name and exits with EX_CONFIG', () => {
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const exit = vi.spyOn(process, 'exit').mockImplementation((code) => {
      throw new Error(`exit ${String(code)}`);
    });
    expect(() => loadConfigOrExit('api-gateway', ServiceEnv, { NATS_URL: 'foo', API_PORT: '0' })).toThrow('exit 78');
    expect(exit).toHaveBeenCalledWith(78);
    expect(stderr).toHaveBeenCalledWith(
      'api-gateway: invalid configuration\n' + '  NATS_URL: expected a nats:// URL, got "foo"\n' + '  API_PORT: expected a port number between 1 and 65535, got "0"\n',
    );
  });
});

describe('redactUrl', () => {
  it.each([
    ['postgres://switchyard:pw@127.0.0.1:5432/db', 'postgres://***@127.0.0.1:5432/db'],
    ['nats://token@broker:4222', 'nats://***@broker:4222'],
    ['redis://:p%40ss@cache:6379/0', 'redis://***@cache:6379/0'],
    ['redis://u:p@ss@cache:6379', 'redis://***@cache:6379'],
    ['nats://127.0.0.1:4222', 'nats://127.0.0.1:4222'],
    // Unencoded '/', '?', '#' in a password: the credentials end at the last '@'. An '@' in a
    // path or query is then redacted too, the cheaper mistake.
    ['postgres://u:pa/ss@host/db', 'postgres://***@host/db'],
    ['postgres://u:pa?ss@host/db', 'postgres://***@host/db'],
    ['postgres://u:pa#ss@host/db', 'postgres://***@host/db'],
    ['http://host/path?next=a@b', 'http://***@b'],
    ['nats//user:pw@broker', '***@broker'],
  ])('%s → %s', (value, expected) => {
    expect(redactUrl(value)).toBe(expected);
  });
});

describe('NATS identity variables', () => {
  const Env = Type.Object({ ...CommonEnv });

  it('accept a user nkey seed and a seed file path', () => {
    const seed = `SU${'A'.repeat(56)}`;
    expect(loadConfig(Env, { NATS_NKEY_SEED: seed }).NATS_NKEY_SEED).toBe(seed);
    expect(loadConfig(Env, { NATS_NKEY_SEED_FILE: '/run/secrets/nats.nk' }).NATS_NKEY_SEED_FILE).toBe('/run/secrets/nats.nk');
  });

  it('refuse what is not a user seed without showing it, and show the path of a bad file variable', () => {
    const notASeed = `SO${'A'.repeat(56)}`; // an operator seed, not a user's
    const err = issuesOf(() => loadConfig(Env, { NATS_NKEY_SEED: notASeed, NATS_NKEY_SEED_FILE: '' }));
    expect(err.issues).toEqual([expect.objectContaining({ variable: 'NATS_NKEY_SEED', hidden: true })]);
    expect(err.message).not.toContain(notASeed);
    expect(err.message).toMatch(/NATS_NKEY_SEED: expected a NATS user nkey seed/);
  });
});
