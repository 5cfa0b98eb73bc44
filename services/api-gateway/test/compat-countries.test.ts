import { describe, expect, it } from 'vitest';
import type { Payload } from '@switchyard/contracts';
import { compatCountry } from '../src/compat/countries.js';
import { parseServerCatalog } from '../src/server-catalog.js';
import { basicHeader, nodeView, poolId, testApp } from './fakes.js';

// The VPN Exit Controller writes `uk` for the United Kingdom (ISO: GB).
const london = nodeView({ nodeId: 'b1b2c3d4-0000-4000-8000-000000000001', name: 'london-0', country: 'GB' });
const auth = { authorization: basicHeader() };

describe('country codes of the /api surface', () => {
  it('takes uk as GB, in either case, and keeps the code the caller wrote', () => {
    expect(compatCountry('uk')).toEqual({ iso: 'gb', given: 'uk' });
    expect(compatCountry('UK')).toEqual({ iso: 'gb', given: 'uk' });
    expect(compatCountry('GB')).toEqual({ iso: 'gb', given: 'gb' });
    expect(compatCountry('jp')).toEqual({ iso: 'jp', given: 'jp' });
    expect(compatCountry('zz')).toBeUndefined();
    expect(compatCountry('u')).toBeUndefined();
  });

  it('reads a server catalog keyed uk as GB', () => {
    const catalog = parseServerCatalog({ uk: ['uk1.vpn.example'], gb: ['gb1.vpn.example'], jp: ['jp1.vpn.example'] });
    expect(catalog.get('gb')).toEqual(['uk1.vpn.example', 'gb1.vpn.example']);
    expect(catalog.has('uk')).toBe(false);
  });

  const asked: Payload<'lb.req.best'>[] = [];
  const { app } = testApp({
    'node.req.list': (p: { nodeId?: string }) => ({ nodes: [london].filter((n) => !p.nodeId || n.nodeId === p.nodeId) }),
    'lb.req.best': (p) => {
      asked.push(p);
      return { node: p.country === 'GB' ? { nodeId: london.nodeId, poolId, strategy: 'round_robin' } : null };
    },
  });

  it('best-node/uk asks for GB and answers with uk', async () => {
    for (const code of ['uk', 'UK']) {
      const res = await app.inject({ method: 'GET', url: `/api/load-balancer/best-node/${code}`, headers: auth });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({ id: london.nodeId, country: 'uk' });
    }
    const gb = await app.inject({ method: 'GET', url: '/api/load-balancer/best-node/gb', headers: auth });
    expect(gb.json()).toMatchObject({ id: london.nodeId, country: 'gb' });
    expect(asked.map((a) => a.country)).toEqual(['GB', 'GB', 'GB']);
  });

  it('config/servers/uk looks GB up and names uk when it has none', async () => {
    const res = await app.inject({ method: 'GET', url: '/api/config/servers/uk', headers: auth });
    expect(res.statusCode).toBe(404);
    expect(res.json().detail).toBe('no servers configured for country "uk"');
  });

  it('start still refuses a code that is neither ISO nor an alias', async () => {
    const res = await app.inject({ method: 'POST', url: '/api/nodes/ux/start', headers: auth });
    expect(res.statusCode).toBe(400);
    expect(res.json().detail).toBe('params.country_code: unknown country "ux" (expected an ISO 3166-1 alpha-2 code)');
  });
});
