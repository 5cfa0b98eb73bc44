import { chmod, mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type CommandHost, localHost } from '../host.js';

// A node's key pair for one tunnel path, made by ssh-keygen on the node's host. Only the public
// half is ever read into memory; the private file stays where ssh-keygen wrote it (0600).

export interface ClientKey {
  /** `<tunnel>.<path>.<n>`: the key's comment and file name. */
  id: string;
  privateKeyPath: string;
  /** `ssh-ed25519 AAAA… <id>`. */
  publicKey: string;
}

const KEY_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/**
 * Generates an ed25519 key pair in `dir` (created 0700: a host-local directory of this node's
 * keys). An existing pair of the same id is replaced: ids are per rotation, never reused for a
 * key the edge still accepts.
 */
export async function generateClientKey(dir: string, id: string, host: CommandHost = localHost): Promise<ClientKey> {
  if (!KEY_ID.test(id)) throw new Error(`key id must be letters, digits and ._- only: ${JSON.stringify(id)}`);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const privateKeyPath = join(dir, id);
  await rm(privateKeyPath, { force: true });
  await rm(`${privateKeyPath}.pub`, { force: true });
  await host.exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', id, '-f', privateKeyPath]);
  // ssh-keygen writes 0600 already; said again so a umask or an old file cannot widen it.
  await chmod(privateKeyPath, 0o600);
  const publicKey = (await readFile(`${privateKeyPath}.pub`, 'utf8')).trim();
  return { id, privateKeyPath, publicKey };
}

/** Removes a retired key pair from the node's host. */
export async function removeClientKey(key: Pick<ClientKey, 'privateKeyPath'>): Promise<void> {
  await rm(key.privateKeyPath, { force: true });
  await rm(`${key.privateKeyPath}.pub`, { force: true });
}
