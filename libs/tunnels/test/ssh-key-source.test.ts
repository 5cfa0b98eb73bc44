import { execFile } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type KeySourceServer, parsePublicKey, serveAuthorizedKeys, SshKeyStore } from '../src/index.js';

// The key source on a real unix socket, asked by the real command script as sshd would run it
// (`authorized-keys.mjs <socket> %u %k %t`); no sshd here, the integration test has it.

const COMMAND = fileURLToPath(new URL('../bin/authorized-keys.mjs', import.meta.url));
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHx1DzmPpYrV5pvZ7fE0uO3kB6H0X0Q7w8sV3aQ2P4bA t1.ssh.1';
const USER = 'switchyard-tunnel';

function command(args: string[]): Promise<{ code: number; stdout: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve) => {
    execFile(process.execPath, [COMMAND, ...args], { timeout: 20_000 }, (err, stdout) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stdout, ms: Date.now() - started });
    });
  });
}

let dir: string;
let source: KeySourceServer;
const store = new SshKeyStore(USER);
const { type, key } = parsePublicKey(KEY);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sy-keysrc-'));
  source = await serveAuthorizedKeys({ socketPath: join(dir, 'keys.sock'), source: store, owner: { uid: process.getuid!(), gid: process.getgid!() } });
});
afterAll(async () => {
  await source?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('the AuthorizedKeysCommand and its key source', () => {
  it('the socket belongs to the command user alone', async () => {
    expect((await stat(source.socketPath)).mode & 0o777).toBe(0o600);
  });

  it('prints the line of a valid key, and nothing once it is revoked: no restart, no file rewritten', async () => {
    store.put({ publicKey: KEY, pathId: 'p1', permitListenPort: 40001, validFrom: new Date(Date.now() - 1000), validUntil: new Date(Date.now() + 3600_000) });
    const valid = await command([source.socketPath, USER, key, type]);
    expect(valid.code).toBe(0);
    expect(valid.stdout).toMatch(/^restrict,port-forwarding,permitlisten="127\.0\.0\.1:40001",expiry-time="\d{14}Z" ssh-ed25519 AAAAC3Nza\S+\n$/);
    expect((await command([source.socketPath, 'root', key, type])).stdout).toBe('');
    store.revoke(KEY);
    expect(await command([source.socketPath, USER, key, type])).toMatchObject({ code: 0, stdout: '' });
  });

  it('fails closed, printing nothing, when the source is gone', async () => {
    const r = await command([join(dir, 'nobody-here.sock'), USER, key, type]);
    expect(r).toMatchObject({ code: 1, stdout: '' });
  });

  it('fails closed within its timeout when the source accepts but never answers', async () => {
    const held: Array<import('node:net').Socket> = [];
    const mute: Server = createServer((s) => held.push(s));
    const path = join(dir, 'mute.sock');
    await new Promise<void>((resolve) => mute.listen(path, resolve));
    try {
      const r = await command([path, USER, key, type]);
      expect(r).toMatchObject({ code: 1, stdout: '' });
      // Its own 3 s bound, not the 20 s of this test's execFile.
      expect(r.ms).toBeLessThan(15_000);
    } finally {
      for (const s of held) s.destroy();
      mute.close();
    }
  });
});
