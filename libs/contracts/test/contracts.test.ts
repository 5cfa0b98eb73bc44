import { describe, expect, it } from 'vitest';
import {
  catalog,
  COUNTRY_CODES,
  CONSUMERS,
  payloadIssues,
  poolSpecIssues,
  STREAMS,
  isKnownCountry,
  assertPayload,
  ContractError,
  type Subject,
  type ConsumerDef,
} from '../src/index.js';

const uuid = '3b241101-e2bb-4255-8caf-4136c566a962';
const exitSpec = { name: 'jp-exit', kind: 'exit' as const, country: 'JP', nodes: { min: 1, max: 2 } };

describe('catalog', () => {
  it('names every subject <domain>.<cmd|evt|req>.<verb>', () => {
    for (const s of Object.keys(catalog)) expect(s).toMatch(/^[a-z]+\.(cmd|evt|req)\.[a-z]+$/);
  });

  it("puts every command in its consumer's stream and every durable event in EVT, nothing twice", () => {
    const cmd = new Set<string>(
      Object.values(STREAMS)
        .filter((d) => d.retention === 'workqueue')
        .flatMap((d) => d.subjects),
    );
    const evt = new Set<string>(STREAMS.EVT.subjects);
    for (const [s, def] of Object.entries(catalog)) {
      if (def.type === 'command') expect(cmd.has(s)).toBe(true);
      if (def.type === 'event') expect(evt.has(s)).toBe(def.durable);
      expect(cmd.has(s) && evt.has(s)).toBe(false);
    }
    expect(evt.has('node.evt.stats')).toBe(false);
  });

  it('gives consumers exactly the subjects their filter selects from their stream', () => {
    const matches = (filter: string | undefined, subject: string) =>
      !filter || new RegExp(`^${filter.replaceAll('.', '\\.').replace('\\.>', '\\..+').replaceAll('*', '[^.]+')}$`).test(subject);
    for (const c of Object.values(CONSUMERS) as ConsumerDef[]) {
      const selected = STREAMS[c.stream].subjects.filter((s) => matches(c.filter, s));
      expect([...c.subjects].sort(), c.durable).toEqual([...selected].sort());
      for (const s of c.subjects) {
        const def = catalog[s as Subject];
        if (def.type === 'command') expect(def.consumer).toBe(c.service);
        if (def.type === 'event') expect(def.consumers).toContain(c.service);
      }
    }
  });
});

describe('payload validation', () => {
  it('accepts a valid command', () => {
    expect(payloadIssues('pool.cmd.create', { orderId: uuid, tenantId: uuid, poolId: uuid, spec: exitSpec })).toEqual([]);
  });

  it('names unknown fields, wrong types and bad formats', () => {
    const issues = payloadIssues('pool.cmd.create', {
      orderId: 'not-a-uuid',
      tenantId: uuid,
      poolId: uuid,
      spec: { ...exitSpec, nodes: { min: 'one', max: 2 }, colour: 'red' },
    });
    const byPath = Object.fromEntries(issues.map((i) => [i.path, i.message]));
    expect(byPath['orderId']).toMatch(/uuid/);
    expect(byPath['spec.nodes.min']).toMatch(/integer/);
    expect(byPath['spec.colour']).toBe('unknown field');
  });

  it('throws a ContractError that names the subject', () => {
    expect(() => assertPayload('order.evt.failed', { orderId: uuid })).toThrow(ContractError);
    expect(() => assertPayload('order.evt.failed', { orderId: uuid })).toThrow(/^order\.evt\.failed: /);
  });
});

describe('pool spec rules', () => {
  it('requires a known country for an exit pool', () => {
    expect(poolSpecIssues(exitSpec)).toEqual([]);
    expect(poolSpecIssues({ ...exitSpec, country: undefined })).toEqual([{ path: 'country', message: 'required for an exit pool' }]);
    expect(poolSpecIssues({ ...exitSpec, country: 'QQ' })[0]?.message).toMatch(/unknown country "QQ"/);
    expect(poolSpecIssues({ ...exitSpec, country: 'jp' })).toEqual([]);
  });

  it('requires an image and a port for an app pool', () => {
    const paths = poolSpecIssues({ name: 'blog', kind: 'app', nodes: { min: 1, max: 1 } }).map((i) => i.path);
    expect(paths).toEqual(['image', 'ports']);
  });

  it('checks relations between fields', () => {
    const issues = poolSpecIssues({
      ...exitSpec,
      nodes: { min: 3, max: 2 },
      healthCheck: { type: 'http', intervalMs: 1000, timeoutMs: 2000, rise: 1, fall: 1, graceMs: 0 },
      sleep: { enabled: true, idleWindowSec: 10, minAwake: 0, probeIntervalMs: 100, probeTimeoutMs: 50 },
    });
    expect(issues.map((i) => i.path)).toEqual(['nodes.min', 'healthCheck.timeoutMs', 'healthCheck.path', 'sleep.probeTimeoutMs']);
  });

  it('knows the 249 ISO 3166-1 codes and no reserved ones', () => {
    expect(COUNTRY_CODES).toHaveLength(249);
    expect(isKnownCountry('UK')).toBe(false);
    expect(isKnownCountry('EU')).toBe(false);
    expect(isKnownCountry('GB')).toBe(true);
  });
});

describe('pool spec bounds a tenant cannot pass', () => {
  const create = (spec: object) => payloadIssues('pool.cmd.create', { orderId: uuid, tenantId: uuid, poolId: uuid, spec: { ...exitSpec, ...spec } });
  const paths = (spec: object) => create(spec).map((i) => i.path);

  it('takes a health-check path without whitespace, and refuses one with a space, a tab or a line break', () => {
    const check = (path: string) => ({ healthCheck: { type: 'http', path, intervalMs: 2000, timeoutMs: 1000, rise: 2, fall: 3, graceMs: 0 } });
    expect(create(check('/healthz?full=1'))).toEqual([]);
    for (const path of ['/a b', '/a\tb', '/a\r\nHost: evil']) expect(paths(check(path)), JSON.stringify(path)).toEqual(['spec.healthCheck.path']);
  });

  it('bounds env and secretEnv in count and value size', () => {
    const vars = (n: number, size = 1) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`V${i}`, 'x'.repeat(size)]));
    expect(create({ env: vars(64, 4096) })).toEqual([]);
    expect(paths({ env: vars(65) })).toEqual(['spec.env']);
    expect(paths({ env: vars(1, 4097) })).toEqual(['spec.env.V0']);
    // Sealed values are longer than their plaintext; the gateway bounds the plaintext itself.
    expect(create({ secretEnv: vars(64, 8192) })).toEqual([]);
    expect(paths({ secretEnv: vars(1, 8193) })).toEqual(['spec.secretEnv.V0']);
  });
});
