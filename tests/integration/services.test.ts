import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Svcm } from '@nats-io/services';
import { SERVICE_NAMES } from '@switchyard/contracts';
import { startService, startTestSystem, type ServiceProcess, type TestSystem } from '@switchyard/testkit';

describe('the eight services', () => {
  let sys: TestSystem;
  const running: ServiceProcess[] = [];
  beforeAll(async () => {
    sys = await startTestSystem();
    for (const name of SERVICE_NAMES) running.push(await sys.start(name));
  });
  afterAll(async () => sys?.close());

  it('each answers $SRV.PING and $SRV.INFO under its own name', async () => {
    const nc = await sys.natsClient();
    const client = new Svcm(nc).client({ strategy: 'timer', maxWait: 2000 });
    const names = new Set<string>();
    for await (const pong of await client.ping()) names.add(pong.name);
    expect([...names].sort()).toEqual([...SERVICE_NAMES].sort());

    const infos: Record<string, string[]> = {};
    for await (const info of await client.info()) infos[info.name] = info.endpoints.map((e) => e.subject);
    expect(infos['exit-node-manager']).toContain('node.req.list');
  });

  it('drains and exits 0 on SIGTERM, each within its shutdown bound', async () => {
    const results = await Promise.all(
      running.map(async (p) => {
        const t0 = Date.now();
        const { code } = await p.stop('SIGTERM', 20_000);
        return { name: p.name, code, ms: Date.now() - t0 };
      }),
    );
    for (const r of results) {
      expect(r.code, r.name).toBe(0);
      expect(r.ms, r.name).toBeLessThan(10_000);
    }
  });
});

describe('a bad configuration value', () => {
  let sys: TestSystem;
  beforeAll(async () => {
    sys = await startTestSystem();
  });
  afterAll(async () => sys?.close());

  it('stops a service before it starts, naming each bad variable and what was expected', async () => {
    const p = sys.spawn('api-gateway', { NATS_URL: 'localhost:4222', API_PORT: '70000', ADMIN_API_KEY: 'short' });
    const { code } = await p.exited;
    expect(code).toBe(78);
    const out = p.output();
    expect(out).toContain('api-gateway: invalid configuration');
    expect(out).toMatch(/NATS_URL: expected a nats:\/\/ URL, got "localhost:4222"/);
    expect(out).toMatch(/API_PORT: .*got "70000"/);
    expect(out).toMatch(/ADMIN_API_KEY: .*24/);
  });

  it('names a missing required variable', async () => {
    const env = sys.env();
    delete env['ADMIN_API_KEY'];
    const q = startService('api-gateway', env);
    const { code } = await q.exited;
    expect(code).toBe(78);
    expect(q.output()).toMatch(/ADMIN_API_KEY: missing/);
  });
});
