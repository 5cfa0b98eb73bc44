import { readdirSync, readFileSync } from 'node:fs';
import { SERVICE_NAMES } from '@switchyard/contracts';
import { ACCESS } from '@switchyard/roles';
import { describe, expect, it } from 'vitest';

// libs/roles' ACCESS against the services' code: a service that starts keeping state in
// Postgres or Redis without its row would run with a role or user that may not touch it.
const root = new URL('../services/', import.meta.url);
const source = (service: string) =>
  readdirSync(new URL(`${service}/src/`, root))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => readFileSync(new URL(`${service}/src/${f}`, root), 'utf8'))
    .join('\n');

describe('libs/roles ACCESS', () => {
  it.each(SERVICE_NAMES)('%s: a Postgres role exactly when it migrates, under its own history table', (service) => {
    const table = source(service).match(/migrateToLatest\(db, \{ migrations, table: '(\w+)' \}\)/)?.[1];
    expect(ACCESS[service].postgres?.migrationsTable).toBe(table);
  });

  // Keys may come before the code (the activator's acl:* counters), never after it.
  it.each(SERVICE_NAMES.filter((s) => /^\s*redis: true,$/m.test(source(s))))('%s connects to Redis, so it has keys of its own', (service) => {
    expect(ACCESS[service].redis.keys.length).toBeGreaterThan(0);
  });

  it.each(SERVICE_NAMES.filter((s) => ACCESS[s].postgres))('%s: hands over exactly the tables its migrations up to the last shared one created', (service) => {
    const pg = ACCESS[service].postgres!;
    const dir = new URL(`${service}/src/migrations/`, root);
    if (pg.lastShared === undefined) {
      expect(pg.handedOver).toEqual([]);
      return;
    }
    const lastShared = pg.lastShared;
    const files = readdirSync(dir).filter((f) => f.replace(/\.ts$/, '') <= lastShared);
    expect(files.map((f) => f.replace(/\.ts$/, ''))).toContain(lastShared);
    const created = files.flatMap((f) => [...readFileSync(new URL(f, dir), 'utf8').matchAll(/\.createTable\('(\w+)'\)/g)].map((m) => m[1]));
    expect(created.sort()).toEqual([...pg.handedOver].sort());
  });
});
