import { describe, expect, it } from 'vitest';
import { parseClientRegions, parseCountryPorts, parseProxyUsers, regionOf } from '../src/settings.js';

const tenant = '0b3c2f0e-5d4a-4f1e-9f7a-1c2d3e4f5a6b';

describe('list settings', () => {
  it('reads country ports and refuses unknown countries and repeated ports', () => {
    expect([...parseCountryPorts('jp=18001, US=18002')]).toEqual([
      [18001, 'JP'],
      [18002, 'US'],
    ]);
    expect(parseCountryPorts('').size).toBe(0);
    expect(() => parseCountryPorts('XX=1')).toThrow(/ISO/);
    expect(() => parseCountryPorts('JP=1,US=1')).toThrow(/twice/);
    expect(() => parseCountryPorts('JP:1')).toThrow(/COUNTRY=port/);
  });
  it('reads users bound to tenants', () => {
    expect(parseProxyUsers(`alice:se:cret@${tenant}`).get('alice')).toEqual({ password: 'se:cret', tenantId: tenant });
    expect(() => parseProxyUsers('alice:pw@not-a-uuid')).toThrow(/UUID/);
    expect(() => parseProxyUsers(`x-country-y:pw@${tenant}`)).toThrow(/keyword/);
  });
  it('finds the most specific region of a client address', () => {
    const ranges = parseClientRegions('10.0.0.0/8=eu-west,10.1.0.0/16=eu-north,0.0.0.0/0=elsewhere');
    expect(regionOf(ranges, '10.1.2.3')).toBe('eu-north');
    expect(regionOf(ranges, '::ffff:10.9.9.9')).toBe('eu-west');
    expect(regionOf(ranges, '192.168.1.1')).toBe('elsewhere');
    expect(regionOf(ranges, '::1')).toBeUndefined();
    expect(() => parseClientRegions('10.0.0.0/33=x')).toThrow();
  });
});
