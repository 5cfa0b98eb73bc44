import { randomBytes } from 'node:crypto';
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isWireGuardKey } from './config.js';
import { type CommandHost, localHost } from '../host.js';

// Keys are made by wg itself. A private key lives in memory only between `wg genkey` and the
// write of its file (mode 0600, in a 0700 state dir on the host it belongs to); from then on it
// is named by its path (`wg set <if> private-key <file>`), never put in argv, env or a log.

export interface KeyPair {
  privateKey: string;
  publicKey: string;
}

/** A private key on disk and its public half: what a link is brought up and rotated with. */
export interface KeyFile {
  readonly publicKey: string;
  /** Absolute path of a mode-0600 file holding the private key. */
  readonly privateKeyFile: string;
}

/** A fresh Curve25519 pair from `wg genkey`, its public half from `wg pubkey` reading stdin. */
export async function generateKeyPair(host: CommandHost = localHost): Promise<KeyPair> {
  const privateKey = (await host.exec('wg', ['genkey'])).trim();
  // Checked without echoing: whatever wg printed may be a key.
  if (!isWireGuardKey(privateKey)) throw new Error('wg genkey printed something that is not a key');
  const publicKey = (await host.exec('wg', ['pubkey'], `${privateKey}\n`)).trim();
  if (!isWireGuardKey(publicKey)) throw new Error('wg pubkey printed something that is not a key');
  return { privateKey, publicKey };
}

/**
 * Makes the state dir with mode 0700. One that exists already must have that mode: chmod-ing a
 * directory the operator named by mistake (/var/lib) would be worse than refusing to start.
 */
export async function ensureStateDir(stateDir: string): Promise<void> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const mode = (await stat(stateDir)).mode & 0o777;
  if ((mode & 0o077) !== 0) throw new Error(`state dir ${stateDir} has mode ${mode.toString(8)}; key files need a directory only its owner can open (0700)`);
}

/**
 * Generates a key pair and writes its private half to a new file in `stateDir`, named after
 * `label` (an interface name) and a random suffix, so a rotation never overwrites the key a
 * running interface still holds.
 */
export async function createKeyFile(stateDir: string, label: string, host?: CommandHost): Promise<KeyFile> {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(label)) throw new Error(`key label "${label}": letters, digits, "_", "." and "-" only`);
  await ensureStateDir(stateDir);
  const pair = await generateKeyPair(host);
  const privateKeyFile = join(stateDir, `${label}-${randomBytes(4).toString('hex')}.key`);
  // `wx`: never through an existing file (or a link planted there); the mode applies at creation.
  await writeFile(privateKeyFile, `${pair.privateKey}\n`, { mode: 0o600, flag: 'wx' });
  return { publicKey: pair.publicKey, privateKeyFile };
}

/** Deletes a private key file once no interface uses it (after a rotation, on teardown). */
export async function removeKeyFile(key: KeyFile): Promise<void> {
  await rm(key.privateKeyFile, { force: true });
}
