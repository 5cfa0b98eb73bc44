import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nkeys } from '@nats-io/transport-node';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '@switchyard/config';
import { natsIdentity } from '../src/nats-identity.js';

const dir = mkdtempSync(join(tmpdir(), 'sy-identity-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function aUser() {
  const user = nkeys.createUser();
  return { seed: new TextDecoder().decode(user.getSeed()), publicKey: user.getPublicKey() };
}

function messageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('natsIdentity', () => {
  it('reads the seed from NATS_NKEY_SEED_FILE, among comments too, and uses the service inbox', () => {
    const u = aUser();
    const file = join(dir, 'lb.nk');
    writeFileSync(file, `# load-balancer\n${u.seed}\n`, { mode: 0o600 });
    const id = natsIdentity('load-balancer', { NATS_NKEY_SEED_FILE: file });
    expect(id.publicKey).toBe(u.publicKey);
    expect(id.options.inboxPrefix).toBe('_INBOX.load-balancer');
    expect(id.options.authenticator).toBeTypeOf('function');
  });

  it('takes NATS_NKEY_SEED when there is no file', () => {
    const u = aUser();
    expect(natsIdentity('api-gateway', { NATS_NKEY_SEED: u.seed }).publicKey).toBe(u.publicKey);
  });

  it('connects without credentials, still with its own inbox, when neither is set', () => {
    const id = natsIdentity('api-gateway', {});
    expect(id.publicKey).toBeUndefined();
    expect(id.options).toEqual({ inboxPrefix: '_INBOX.api-gateway' });
  });

  it('refuses both at once, a missing file, a file without a seed and a seed whose checksum fails, never showing the seed', () => {
    const u = aUser();
    const file = join(dir, 'both.nk');
    writeFileSync(file, u.seed);
    const both = messageOf(() => natsIdentity('api-gateway', { NATS_NKEY_SEED_FILE: file, NATS_NKEY_SEED: u.seed }));
    expect(both).toMatch(/^NATS_NKEY_SEED: expected unset when NATS_NKEY_SEED_FILE is set/);
    expect(messageOf(() => natsIdentity('api-gateway', { NATS_NKEY_SEED_FILE: join(dir, 'absent.nk') }))).toMatch(/NATS_NKEY_SEED_FILE: .*absent\.nk \(ENOENT\)/);
    const empty = join(dir, 'empty.nk');
    writeFileSync(empty, 'not a seed\n');
    expect(messageOf(() => natsIdentity('api-gateway', { NATS_NKEY_SEED_FILE: empty }))).toMatch(/NATS_NKEY_SEED_FILE: .*no seed in it/);
    // Right shape, wrong checksum: a character of the key changed (not the last, whose low
    // bits are base32 padding).
    const broken = `${u.seed.slice(0, 20)}${u.seed[20] === 'Q' ? 'R' : 'Q'}${u.seed.slice(21)}`;
    const bad = messageOf(() => natsIdentity('api-gateway', { NATS_NKEY_SEED: broken }));
    expect(bad).toMatch(/NATS_NKEY_SEED: expected a valid NATS user nkey seed/);
    for (const m of [both, bad]) {
      expect(m).not.toContain(u.seed);
      expect(m).not.toContain(broken);
    }
  });
});
