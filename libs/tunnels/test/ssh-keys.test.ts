import { describe, expect, it } from 'vitest';
import { authorizedKeyLine, authorizedKeysAnswer, expiryTime, isValidAt, parsePublicKey, rotateRecords, type SshKeyRecord, SshKeyStore } from '../src/index.js';

const KEY_A = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHx1DzmPpYrV5pvZ7fE0uO3kB6H0X0Q7w8sV3aQ2P4bA t1.ssh.1';
const KEY_B = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB3m0p9q8r7s6t5u4v3w2x1y0zA9B8C7D6E5F4G3H2I1 t1.ssh.2';
const T0 = new Date('2026-03-01T12:00:00Z');
const HOUR = 3600_000;

const record = (over: Partial<SshKeyRecord> = {}): SshKeyRecord => ({
  publicKey: KEY_A,
  pathId: 'path-1',
  permitListenPort: 40001,
  validFrom: T0,
  validUntil: new Date(T0.getTime() + 90 * 24 * HOUR),
  ...over,
});
const USER = 'switchyard-tunnel';
const asked = (key: string, user = USER) => {
  const { type, key: blob } = parsePublicKey(key);
  return { user, type, key: blob };
};

describe('authorized_keys lines', () => {
  it('restrict everything, then allow forwarding to the key’s own loopback port until its expiry, in UTC', () => {
    expect(authorizedKeyLine(record({ validUntil: new Date('2026-05-30T08:07:06.789Z') }))).toBe(
      'restrict,port-forwarding,permitlisten="127.0.0.1:40001",expiry-time="20260530080706Z" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHx1DzmPpYrV5pvZ7fE0uO3kB6H0X0Q7w8sV3aQ2P4bA',
    );
    expect(expiryTime(new Date('2026-01-02T03:04:05Z'))).toBe('20260102030405Z');
  });

  it('refuse what is not a public key or a port', () => {
    expect(() => authorizedKeyLine(record({ publicKey: 'command="sh" ssh-ed25519 AAAA' }))).toThrow(/not an OpenSSH public key/);
    expect(() => authorizedKeyLine(record({ publicKey: '-----BEGIN OPENSSH PRIVATE KEY-----' }))).toThrow(/not an OpenSSH public key/);
    expect(() => authorizedKeyLine(record({ permitListenPort: 0 }))).toThrow(/permitListenPort/);
  });
});

describe('which keys are valid now', () => {
  it('from validFrom up to (not including) validUntil, and never once revoked', () => {
    const r = record({ validUntil: new Date(T0.getTime() + HOUR) });
    expect(isValidAt(r, new Date(T0.getTime() - 1))).toBe(false);
    expect(isValidAt(r, T0)).toBe(true);
    expect(isValidAt(r, new Date(T0.getTime() + HOUR - 1))).toBe(true);
    expect(isValidAt(r, new Date(T0.getTime() + HOUR))).toBe(false);
    expect(isValidAt({ ...r, revokedAt: new Date(T0.getTime() + 10) }, new Date(T0.getTime() + 5))).toBe(true);
    expect(isValidAt({ ...r, revokedAt: new Date(T0.getTime() + 10) }, new Date(T0.getTime() + 10))).toBe(false);
  });

  it('answers only the asked key, only for the tunnel user, whatever the comment', () => {
    const records = [record(), record({ publicKey: KEY_B, permitListenPort: 40002 })];
    const now = new Date(T0.getTime() + HOUR);
    expect(authorizedKeysAnswer(records, asked(KEY_B.replace('t1.ssh.2', 'other comment')), USER, now)).toEqual([authorizedKeyLine(records[1]!)]);
    expect(authorizedKeysAnswer(records, asked(KEY_A, 'root'), USER, now)).toEqual([]);
    expect(authorizedKeysAnswer(records, { ...asked(KEY_A), type: 'ssh-rsa' }, USER, now)).toEqual([]);
  });

  it('a store: put, revoke and expiry change the answer without anything else being told', () => {
    const store = new SshKeyStore(USER);
    store.put(record({ validUntil: new Date(T0.getTime() + HOUR) }));
    expect(store.authorizedKeys(asked(KEY_A), T0)).toHaveLength(1);
    expect(store.authorizedKeys(asked(KEY_A), new Date(T0.getTime() + HOUR))).toEqual([]);
    store.put(record());
    store.revoke(KEY_A, new Date(T0.getTime() + 1));
    expect(store.authorizedKeys(asked(KEY_A), new Date(T0.getTime() + 2))).toEqual([]);
    expect(store.list()[0]!.revokedAt).toEqual(new Date(T0.getTime() + 1));
  });
});

describe('one port, one path', () => {
  it('a key of another path cannot take a port a live key holds; an expired or revoked one frees it', () => {
    const store = new SshKeyStore(USER);
    const held = record({ validUntil: new Date(T0.getTime() + HOUR) });
    store.put(held, T0);
    const intruder = record({ publicKey: KEY_B, pathId: 'path-2' });
    expect(() => store.put(intruder, T0)).toThrow(`port ${held.permitListenPort} is held by a key of path path-1`);
    // The same path may add a key on its own port (the record of a rotation, say).
    store.put(record({ publicKey: KEY_B }), T0);
    store.remove(KEY_B);
    // Expired: free.
    store.put(intruder, new Date(T0.getTime() + HOUR));
    store.remove(KEY_B);
    // Revoked: free.
    store.revoke(KEY_A, new Date(T0.getTime() + 1));
    store.put(intruder, new Date(T0.getTime() + 2));
    expect(store.list().map((r) => r.pathId)).toEqual(['path-1', 'path-2']);
  });
});

describe('rotation with overlap', () => {
  it('the new key is valid now on another port; the old one only until the overlap ends', () => {
    const now = new Date(T0.getTime() + 7 * 24 * HOUR);
    const { retiring, next } = rotateRecords(record(), { publicKey: KEY_B, permitListenPort: 40002 }, { now, overlapMs: HOUR, lifetimeMs: 90 * 24 * HOUR });
    expect(retiring).toEqual({ ...record(), validUntil: new Date(now.getTime() + HOUR) });
    expect(next).toEqual({ publicKey: KEY_B, pathId: 'path-1', permitListenPort: 40002, validFrom: now, validUntil: new Date(now.getTime() + 90 * 24 * HOUR) });
    for (const at of [now, new Date(now.getTime() + HOUR - 1)]) {
      expect([isValidAt(retiring, at), isValidAt(next, at)]).toEqual([true, true]);
    }
    expect(isValidAt(retiring, new Date(now.getTime() + HOUR))).toBe(false);
  });

  it('never lengthens the old key, and needs another port (the old session still holds its own)', () => {
    const old = record({ validUntil: new Date(T0.getTime() + 10 * 60_000) });
    const { retiring } = rotateRecords(old, { publicKey: KEY_B, permitListenPort: 40002 }, { now: T0, overlapMs: HOUR, lifetimeMs: HOUR });
    expect(retiring.validUntil).toEqual(old.validUntil);
    expect(() => rotateRecords(old, { publicKey: KEY_B, permitListenPort: 40001 }, { now: T0, overlapMs: HOUR, lifetimeMs: HOUR })).toThrow(/another port/);
  });
});
