import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Fastify, { type FastifyInstance } from 'fastify';
import pino from 'pino';
import { createDb, migrateToLatest, type Kysely } from '@switchyard/db';
import { createTestDatabase, type TestDatabase } from '@switchyard/testkit';
import { createAuth } from '../src/http/auth.js';
import { createRateLimits, DEFAULT_RATE_LIMITS } from '../src/http/rate-limits.js';
import { installIdempotency } from '../src/idempotency/plugin.js';
import { createTenant } from '../src/keys.js';
import { migrations } from '../src/migrations.js';
import { requires } from '../src/scopes.js';
import type { Database } from '../src/tables.js';

// Integration: the plugin over a real Postgres database (TEST_DATABASE_URL), with a route of the
// test's own whose success is a stream, which cannot be kept for a replay.
describe('Idempotency-Key on an answer that cannot be kept', () => {
  let database: TestDatabase;
  let db: Kysely<Database>;
  let app: FastifyInstance;
  let runs = 0;
  const warnings: string[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    db = createDb<Database>(database.url, { max: 4, applicationName: 'idempotency-plugin-test' });
    await migrateToLatest(db, { migrations, table: 'api_gateway_migrations' });
    const log = pino({ level: 'warn' }, { write: (line: string) => warnings.push(line) });
    app = Fastify({ loggerInstance: log }) as unknown as FastifyInstance;
    app.setErrorHandler((err: any, _req, reply) => reply.code(err.statusCode ?? 500).send({ error: err.error, message: err.message }));
    const auth = createAuth({ db, limits: createRateLimits(DEFAULT_RATE_LIMITS), used: () => undefined });
    app.addHook('onRequest', auth.key);
    installIdempotency(app, { db, secretsKey: randomBytes(32), inFlightMs: 60_000 });
    app.post('/export', { config: { idempotency: {} }, schema: requires('write') }, async (_request, reply) => {
      runs++;
      return reply.code(201).send(Readable.from(['done']));
    });
    await app.ready();
  });
  afterAll(async () => {
    await app?.close();
    await db?.destroy();
    await database?.drop();
  });

  it('keeps the key as done (withheld), so a retry does not run the action again, and logs it', async () => {
    const tenant = await createTenant(db, `t-${randomBytes(4).toString('hex')}`, new Date(Date.now() + 86_400_000));
    if (tenant === 'exists') throw new Error('tenant exists');
    const headers = { authorization: `Bearer ${tenant.apiKey}`, 'idempotency-key': 'export-1' };
    const first = await app.inject({ method: 'POST', url: '/export', headers });
    expect(first.statusCode).toBe(201);
    expect(first.body).toBe('done');
    const retry = await app.inject({ method: 'POST', url: '/export', headers });
    expect(retry.statusCode).toBe(409);
    expect(retry.json()).toMatchObject({ error: 'idempotency_response_withheld' });
    expect(runs).toBe(1);
    const [record] = await database.query('select state, response_status, response_body from idempotency_keys where tenant_id = $1', [tenant.tenantId]);
    expect(record).toEqual({ state: 'done', response_status: 201, response_body: null });
    expect(warnings.join('\n')).toContain('cannot be replayed; kept as withheld');
  });
});
