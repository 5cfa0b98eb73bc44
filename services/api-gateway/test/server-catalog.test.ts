import { describe, expect, it } from 'vitest';
import { DEFAULT_SERVERS, parseServerCatalog } from '../src/server-catalog.js';

describe('parseServerCatalog', () => {
  it('keys the catalog by lower-case country', () => {
    expect([...parseServerCatalog({ JP: ['jp1.example.net'] })]).toEqual([['jp', ['jp1.example.net']]]);
    expect(parseServerCatalog(DEFAULT_SERVERS).size).toBe(Object.keys(DEFAULT_SERVERS).length);
  });

  it('names every bad entry', () => {
    expect(() => parseServerCatalog({ xx: ['a.example'], jp: ['ok.example', 'not a host', 7], de: 'de1.example' })).toThrow(
      '"xx" is not an ISO 3166-1 alpha-2 country code; jp[1]: expected a hostname, got "not a host"; jp[2]: expected a hostname, got 7; de: expected an array of hostnames',
    );
    expect(() => parseServerCatalog(['jp'])).toThrow(/expected a JSON object/);
  });
});
