import { randomBytes, scryptSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { ProxyUserView } from '@switchyard/contracts';
import { deriveScrypt, sameSecret } from '@switchyard/secrets';
import { ProxyCredentials, ProxyUserBook, rebuildProxyUsers, VerifiedCache, type Derive } from '../src/proxy-users.js';

const tenantA = '0b3c2f0e-5d4a-4f1e-9f7a-1c2d3e4f5a6b';
const tenantB = '7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f';
// Small costs keep the tests fast; the parameters travel with each user, as in production.
const COST = { n: 1024, r: 8, p: 1 };

let ids = 0;
function userView(name: string, password: string, tenantId = tenantA): ProxyUserView {
  const salt = randomBytes(16);
  const hash = scryptSync(password, salt, 32, { N: COST.n, r: COST.r, p: COST.p });
  const userId = `00000000-0000-4000-8000-${String(++ids).padStart(12, '0')}`;
  return { tenantId, userId, name, hash: { algorithm: 'scrypt', ...COST, salt: salt.toString('base64'), hash: hash.toString('base64') }, createdAt: new Date().toISOString() };
}

/** The real scrypt, counting its runs. */
function countingDerive(): { derive: Derive; runs: () => number } {
  let runs = 0;
  return {
    derive: (...args) => {
      runs++;
      return deriveScrypt(...args);
    },
    runs: () => runs,
  };
}

describe('sameSecret', () => {
  it('compares whatever the lengths', () => {
    expect(sameSecret('secret', 'secret')).toBe(true);
    expect(sameSecret('secret', 'secreT')).toBe(false);
    expect(sameSecret('secret', 'secret-and-more')).toBe(false);
    expect(sameSecret('', 'x')).toBe(false);
  });
});

describe('VerifiedCache', () => {
  it('forgets an entry once its time is up', () => {
    let now = 0;
    const cache = new VerifiedCache(10, 1000, () => now);
    cache.add('a');
    now = 999;
    expect(cache.has('a')).toBe(true);
    now = 1000;
    expect(cache.has('a')).toBe(false);
    expect(cache.size).toBe(0);
  });

  it('holds at most its bound, dropping the oldest first', () => {
    const cache = new VerifiedCache(3, 60_000);
    for (const k of ['a', 'b', 'c', 'd']) cache.add(k);
    expect(cache.size).toBe(3);
    expect(['a', 'b', 'c', 'd'].map((k) => cache.has(k))).toEqual([false, true, true, true]);
  });
});

describe('ProxyUserBook', () => {
  it('verifies a password by recomputing its scrypt hash, and refuses a wrong one or an unknown name', async () => {
    const book = new ProxyUserBook();
    book.created(userView('alice', 'pu_right'));
    expect(await book.verify('alice', 'pu_right')).toBe(tenantA);
    expect(await book.verify('alice', 'pu_wrong')).toBeUndefined();
    expect(await book.verify('alice', '')).toBeUndefined();
    expect(await book.verify('bob', 'pu_right')).toBeUndefined();
  });

  it('runs scrypt once per user and password: later connections hit the cache', async () => {
    const { derive, runs } = countingDerive();
    const book = new ProxyUserBook({ derive });
    book.created(userView('alice', 'pu_right'));
    // Opened at once, before any answer: one computation is shared.
    const first = await Promise.all([book.verify('alice', 'pu_right'), book.verify('alice', 'pu_right'), book.verify('alice', 'pu_right')]);
    expect(first).toEqual([tenantA, tenantA, tenantA]);
    expect(runs()).toBe(1);
    expect(await book.verify('alice', 'pu_right')).toBe(tenantA);
    expect(runs()).toBe(1);
    // Failures are not cached: a wrong password costs its computation every time.
    await book.verify('alice', 'pu_wrong');
    await book.verify('alice', 'pu_wrong');
    expect(runs()).toBe(3);
  });

  it('refuses a revoked user at once, even with its verification cached, and a stale snapshot does not bring it back', async () => {
    const book = new ProxyUserBook();
    const alice = userView('alice', 'pu_right');
    book.created(alice);
    expect(await book.verify('alice', 'pu_right')).toBe(tenantA);
    book.revoked({ userId: alice.userId });
    expect(await book.verify('alice', 'pu_right')).toBeUndefined();
    book.replace([alice]);
    book.created(alice);
    expect(await book.verify('alice', 'pu_right')).toBeUndefined();
    expect(book.size).toBe(0);
  });

  it('refuses a user revoked while its password was being checked', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const book = new ProxyUserBook({ derive: async (...args) => (await gate, deriveScrypt(...args)) });
    const alice = userView('alice', 'pu_right');
    book.created(alice);
    const verdict = book.verify('alice', 'pu_right');
    book.revoked({ userId: alice.userId });
    release();
    expect(await verdict).toBeUndefined();
  });

  it('keeps two tenants apart when both use a name: each password opens its own tenant only', async () => {
    const book = new ProxyUserBook();
    book.created(userView('shop', 'pu_a'));
    book.created(userView('shop', 'pu_b', tenantB));
    expect(await book.verify('shop', 'pu_a')).toBe(tenantA);
    expect(await book.verify('shop', 'pu_b')).toBe(tenantB);
    expect(await book.verify('shop', 'pu_c')).toBeUndefined();
  });

  it('replaces its users from a snapshot but keeps one an event added just before the snapshot was asked for', async () => {
    let now = 100_000;
    const book = new ProxyUserBook({ now: () => now });
    const old = userView('old', 'pw1');
    book.replace([old]);
    const fresh = userView('fresh', 'pw2');
    book.created(fresh);
    // A snapshot asked for right after the event, computed before the gateway committed it.
    book.replace([], now + 1000);
    expect(await book.verify('old', 'pw1')).toBeUndefined();
    expect(await book.verify('fresh', 'pw2')).toBe(tenantA);
    now += 60_000;
    book.replace([], now);
    expect(book.size).toBe(0);
  });

  it('refuses, unchecked, beyond its bound of verifications at once', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const { derive, runs } = countingDerive();
    const book = new ProxyUserBook({ maxPending: 2, derive: async (...args) => (await gate, derive(...args)) });
    book.created(userView('alice', 'pu_right'));
    const attempts = [book.verify('alice', 'x1'), book.verify('alice', 'x2'), book.verify('alice', 'pu_right')];
    release();
    expect(await Promise.all(attempts)).toEqual([undefined, undefined, undefined]);
    expect(runs()).toBe(2);
    // Once the queue drained the right password passes.
    expect(await book.verify('alice', 'pu_right')).toBe(tenantA);
  });
});

describe('ProxyUserBook under a flood of wrong passwords', () => {
  function gated(): { derive: Derive; runs: () => number; release: () => void } {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const { derive, runs } = countingDerive();
    return { derive: async (...args) => (await gate, derive(...args)), runs, release };
  }

  it("a flood of wrong passwords for one user does not stop another user's valid credentials", async () => {
    const { derive, runs, release } = gated();
    const book = new ProxyUserBook({ derive });
    book.created(userView('alice', 'pu_alice'));
    book.created(userView('bob', 'pu_bob', tenantB));
    // More concurrent guesses than the worker's whole budget of 64, from many addresses.
    const flood = Array.from({ length: 200 }, (_, i) => book.verify('alice', `guess-${i}`, `198.51.100.${i % 250}`));
    const bob = book.verify('bob', 'pu_bob', '203.0.113.7');
    release();
    expect(await bob).toBe(tenantB);
    expect(await Promise.all(flood)).toEqual(Array(200).fill(undefined));
    // Four guesses were checked, the rest refused unchecked; one scrypt for bob.
    expect(runs()).toBe(4 + 1);
    // Once the flood drained alice's own password passes.
    expect(await book.verify('alice', 'pu_alice', '203.0.113.8')).toBe(tenantA);
  });

  it('a name shared by two tenants costs one scrypt at a time per check, within the same per-name bound', async () => {
    const { derive, runs, release } = gated();
    const book = new ProxyUserBook({ derive });
    book.created(userView('shop', 'pu_a'));
    book.created(userView('shop', 'pu_b', tenantB));
    book.created(userView('carol', 'pu_carol'));
    const flood = Array.from({ length: 100 }, (_, i) => book.verify('shop', `guess-${i}`, `198.51.100.${i}`));
    const carol = book.verify('carol', 'pu_carol', '203.0.113.7');
    release();
    expect(await carol).toBe(tenantA);
    expect(await Promise.all(flood)).toEqual(Array(100).fill(undefined));
    // Four checks of "shop", each against both users, one after the other; one for carol.
    expect(runs()).toBe(4 * 2 + 1);
    expect(await book.verify('shop', 'pu_b', '203.0.113.8')).toBe(tenantB);
  });

  it('after a wrong password an address is refused for that name unchecked for a moment; other addresses and verified passwords are not', async () => {
    let now = 1_000_000;
    const { derive, runs } = countingDerive();
    const book = new ProxyUserBook({ derive, now: () => now, failureBackoffMs: 1000 });
    book.created(userView('alice', 'pu_alice'));
    book.created(userView('bob', 'pu_bob'));
    const guesser = '192.0.2.1';
    expect(await book.verify('alice', 'pu_alice', '10.1.1.1')).toBe(tenantA);
    expect(runs()).toBe(1);
    expect(await book.verify('alice', 'guess-0', guesser)).toBeUndefined();
    expect(runs()).toBe(2);
    for (let i = 1; i <= 10; i++) expect(await book.verify('alice', `guess-${i}`, guesser)).toBeUndefined();
    expect(runs()).toBe(2);
    // A verified password costs no scrypt and passes even from there.
    expect(await book.verify('alice', 'pu_alice', guesser)).toBe(tenantA);
    // Another name from the same address, and the same name from another address, are checked.
    expect(await book.verify('bob', 'guess', guesser)).toBeUndefined();
    expect(await book.verify('alice', 'guess', '192.0.2.2')).toBeUndefined();
    expect(runs()).toBe(4);
    // bob's right password, not yet verified, waits out the backoff of the address that just failed.
    expect(await book.verify('bob', 'pu_bob', guesser)).toBeUndefined();
    expect(runs()).toBe(4);
    now += 1000;
    expect(await book.verify('bob', 'pu_bob', guesser)).toBe(tenantA);
    expect(await book.verify('alice', 'guess-11', guesser)).toBeUndefined();
    expect(runs()).toBe(6);
  });

  it('remembers a bounded number of backed-off addresses', async () => {
    const { derive, runs } = countingDerive();
    const book = new ProxyUserBook({ derive, failureEntries: 2 });
    book.created(userView('alice', 'pu_alice'));
    for (const client of ['192.0.2.1', '192.0.2.2', '192.0.2.3']) await book.verify('alice', 'guess', client);
    expect(runs()).toBe(3);
    // The oldest pair was dropped: checked again; the two newest are still backed off.
    await book.verify('alice', 'guess', '192.0.2.1');
    await book.verify('alice', 'guess', '192.0.2.3');
    expect(runs()).toBe(4);
  });
});

describe('ProxyCredentials', () => {
  it('accepts LB_PROXY_USERS and the tenants\' users; "configured" says whether any exists', async () => {
    const book = new ProxyUserBook();
    const none = new ProxyCredentials(new Map(), book);
    expect(none.configured()).toBe(false);
    const alice = userView('alice', 'pu_right');
    book.created(alice);
    expect(none.configured()).toBe(true);
    book.revoked({ userId: alice.userId });
    expect(none.configured()).toBe(false);

    const fixed = new ProxyCredentials(new Map([['ops', { password: 'secret', tenantId: tenantB }]]), book);
    expect(fixed.configured()).toBe(true);
    expect(await fixed.verify('ops', 'secret')).toBe(tenantB);
    expect(await fixed.verify('ops', 'secret2')).toBeUndefined();
    book.created(userView('bob', 'pu_bob'));
    expect(await fixed.verify('bob', 'pu_bob')).toBe(tenantA);
  });
});

describe('rebuildProxyUsers', () => {
  it('reads every page of the snapshot, then replaces the book at once', async () => {
    const users = [userView('u1', 'p1'), userView('u2', 'p2'), userView('u3', 'p3')];
    const asked: Array<string | undefined> = [];
    const book = new ProxyUserBook();
    const stale = userView('gone', 'p0');
    book.replace([stale]);
    await rebuildProxyUsers(book, async (p) => {
      asked.push(p.after);
      const from = p.after ? users.findIndex((u) => u.userId === p.after) + 1 : 0;
      return { users: users.slice(from, from + 2), more: from + 2 < users.length };
    })();
    expect(asked).toEqual([undefined, users[1]!.userId]);
    expect(book.size).toBe(3);
    expect(await book.verify('u3', 'p3')).toBe(tenantA);
    expect(await book.verify('gone', 'p0')).toBeUndefined();
  });

  it('keeps the book as it was when a page does not come', async () => {
    const book = new ProxyUserBook();
    book.replace([userView('kept', 'pk')]);
    let calls = 0;
    const rebuild = rebuildProxyUsers(book, async () => {
      if (++calls > 1) throw new Error('no responders');
      return { users: [userView('first', 'pf')], more: true };
    });
    await expect(rebuild()).rejects.toThrow('no responders');
    expect(await book.verify('kept', 'pk')).toBe(tenantA);
    expect(await book.verify('first', 'pf')).toBeUndefined();
  });
});
