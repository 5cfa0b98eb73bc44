import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, POSTGRES_IMAGE, POSTGRES_PORT, REDIS_IMAGE, REDIS_PORT, MODES, runClient, startScaleToZero, type ScaleToZero } from '@switchyard/testkit';

// Scale to zero is plain TCP: real database servers put to sleep when idle answer their real
// clients (redis-cli, psql), run once with no retry, through the activator in both modes.
describe.each(MODES)('sleeping databases answer their clients, activator in %s mode', (mode) => {
  let s: ScaleToZero;

  beforeAll(async () => {
    s = await startScaleToZero(mode);
  }, 120_000);
  afterAll(async () => {
    await s?.close();
  });

  it('a sleeping Redis server answers redis-cli, with the key written before it slept', async () => {
    const { poolId, nodeIds } = await s.createAppPool({ name: 'redis', image: REDIS_IMAGE, containerPort: REDIS_PORT });
    const nodeId = nodeIds[0]!;
    const port = await s.endpoint(nodeId);
    const redisCli = (...args: string[]) => runClient('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], 15_000);

    // Started is not ready: setup may retry; the client run against the sleeping node may not.
    const set = await eventually(
      () => redisCli('set', 'note', 'before the sleep'),
      (r) => r.code === 0 && r.stdout.trim() === 'OK',
      15_000,
      'redis-cli set answered',
      { intervalMs: 100, returnLast: true },
    );
    expect({ code: set.code, out: set.stdout.trim() }).toEqual({ code: 0, out: 'OK' });
    expect((await s.setSleepPolicy(poolId, { enabled: true, idleWindowSec: 2 })).status).toBe(202);
    const sleptAt = await s.sleptWhenIdle(nodeId);

    const ping = await redisCli('ping');
    expect({ code: ping.code, out: ping.stdout.trim(), err: ping.stderr.trim() }).toEqual({ code: 0, out: 'PONG', err: '' });
    const woke = await s.watch.next((m) => m.subject === 'activator.evt.woke' && m.data.nodeId === nodeId && m.at >= sleptAt, 10_000);
    expect(woke.data).toMatchObject({ trigger: 'connection', mode, heldConnections: 1 });
    // Saved to /data when it was stopped, loaded when it started again.
    const get = await redisCli('get', 'note');
    expect({ code: get.code, out: get.stdout.trim(), err: get.stderr.trim() }).toEqual({ code: 0, out: 'before the sleep', err: '' });
  }, 90_000);

  it('a sleeping PostgreSQL server answers psql, with the data written before it slept', async () => {
    const { poolId, nodeIds } = await s.createAppPool({ name: 'postgres', image: POSTGRES_IMAGE, containerPort: POSTGRES_PORT });
    const nodeId = nodeIds[0]!;
    const port = await s.endpoint(nodeId);
    const psql = (sql: string) => runClient('psql', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-Atc', sql], 20_000);

    // Started is not ready: the server takes a moment after its container starts. Setup may
    // retry; the client run against the sleeping node below may not.
    await eventually(
      () => psql('select 1'),
      (r) => r.code === 0,
      15_000,
      'psql answered',
      { intervalMs: 100, returnLast: true },
    );
    // A stop keeps the container's writable layer: what was written before the sleep is there after it.
    const written = await psql("create table notes (body text); insert into notes values ('before the sleep')");
    expect(written.code, written.stderr).toBe(0);
    expect((await s.setSleepPolicy(poolId, { enabled: true, idleWindowSec: 2 })).status).toBe(202);
    const sleptAt = await s.sleptWhenIdle(nodeId);

    const read = await psql('select body from notes');
    expect({ code: read.code, out: read.stdout.trim(), err: read.stderr.trim() }).toEqual({ code: 0, out: 'before the sleep', err: '' });
    const woke = await s.watch.next((m) => m.subject === 'activator.evt.woke' && m.data.nodeId === nodeId && m.at >= sleptAt, 10_000);
    expect(woke.data).toMatchObject({ trigger: 'connection', mode, heldConnections: 1 });
  }, 90_000);
});
