import { describe, expect, it } from 'vitest';
import { NftRedirects, parseSetPorts, setupScript, type NftRunner } from '../src/nft.js';

/** An nft stand-in that keeps a set and records every command line. */
function fakeNft(initial: number[] = []) {
  const set = new Set(initial);
  const lines: string[] = [];
  const elems = (s: string) => [...s.matchAll(/\d+/g)].map((m) => Number(m[0]));
  const run: NftRunner = async (args, stdin) => {
    const line = args.join(' ');
    lines.push(stdin === undefined ? line : `${line} <<${stdin}`);
    if (args[0] === '-j') return JSON.stringify({ nftables: [{ metainfo: {} }, { set: { name: 'sleeping_ports', elem: [...set] } }] });
    if (args[0] === '-f') {
      for (const l of stdin!.split('\n')) {
        if (l.startsWith('flush set')) set.clear();
        if (l.startsWith('add element')) for (const p of elems(l.slice(l.indexOf('{')))) set.add(p);
      }
      return '';
    }
    const ports = elems(line.slice(line.indexOf('{')));
    if (args[0] === 'add') for (const p of ports) set.add(p);
    if (args[0] === 'delete') {
      if (ports.some((p) => !set.has(p))) throw new Error('Error: Could not process rule: No such file or directory');
      for (const p of ports) set.delete(p);
    }
    return '';
  };
  return { set, lines, run };
}

describe('nft driver', () => {
  it('sets up table, set, chain and the one redirect rule in one batch that keeps existing elements', () => {
    const script = setupScript({ table: 'sy_t', listenPort: 9700, sourceAddress: '127.0.0.2' });
    expect(script.split('\n').filter(Boolean)).toEqual([
      'add table ip sy_t',
      'add set ip sy_t sleeping_ports { type inet_service; }',
      'add chain ip sy_t output { type nat hook output priority -101; policy accept; }',
      'flush chain ip sy_t output',
      'add rule ip sy_t output ip daddr 127.0.0.1 ip saddr != 127.0.0.2 tcp dport @sleeping_ports redirect to :9700',
    ]);
    expect(script).not.toMatch(/flush set|delete/);
  });

  it('reads the elements at setup, adds only new ports and removes only present ones', async () => {
    const nft = fakeNft([5000]);
    const r = new NftRedirects({ table: 'sy_t', listenPort: 9700, sourceAddress: '127.0.0.2', run: nft.run });
    await r.setup();
    expect(r.ports()).toEqual([5000]);
    await r.add([5000, 5001]);
    await r.remove([5001, 6000]);
    expect(nft.lines.slice(2)).toEqual(['add element ip sy_t sleeping_ports { 5001 }', 'delete element ip sy_t sleeping_ports { 5001 }']);
    expect(r.ports()).toEqual([5000]);
  });

  it('replaces the whole set in one atomic batch', async () => {
    const nft = fakeNft([1, 2, 3]);
    const r = new NftRedirects({ table: 'sy_t', listenPort: 9700, sourceAddress: '127.0.0.2', run: nft.run });
    await r.setup();
    await r.replace([7002, 7001]);
    expect(nft.lines.at(-1)).toBe('-f - <<flush set ip sy_t sleeping_ports\nadd element ip sy_t sleeping_ports { 7001, 7002 }\n');
    expect([...nft.set].sort()).toEqual([7001, 7002]);
    expect(r.ports()).toEqual([7001, 7002]);
  });

  it('a removal that nft refuses (the set changed behind its back) is retried with what is really there', async () => {
    const nft = fakeNft();
    const r = new NftRedirects({ table: 'sy_t', listenPort: 9700, sourceAddress: '127.0.0.2', run: nft.run });
    await r.setup();
    await r.add([8001, 8002]);
    nft.set.delete(8001);
    await r.remove([8001, 8002]);
    expect(nft.set.size).toBe(0);
    expect(r.ports()).toEqual([]);
  });

  it('parses the ports of nft -j list set', () => {
    const out =
      '{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"set": {"family": "ip", "name": "sleeping_ports", "table": "t", "type": "inet_service", "handle": 1, "elem": [1234, 1240]}}]}';
    expect(parseSetPorts(out)).toEqual([1234, 1240]);
    expect(parseSetPorts('{"nftables": [{"set": {"name": "sleeping_ports"}}]}')).toEqual([]);
  });
});
