import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createKeyFile, ensureStateDir, isWireGuardKey, type KeyFile, localHost, removeKeyFile } from '@switchyard/tunnels';

/**
 * This host's WireGuard key for its link end: the newest `<label>-*.key` of `dir` (a 0700
 * directory), made if there is none, so a restart comes back with the key its peer knows. Older
 * files (a rotation a crash cut short) are removed. The private half is read only to hand it to
 * `wg pubkey` on stdin.
 */
export async function currentKeyFile(dir: string, label: string): Promise<KeyFile> {
  await ensureStateDir(dir);
  const names = (await readdir(dir)).filter((f) => f.startsWith(`${label}-`) && f.endsWith('.key'));
  const files = await Promise.all(names.map(async (f) => ({ path: join(dir, f), mtime: (await stat(join(dir, f))).mtimeMs })));
  files.sort((a, b) => b.mtime - a.mtime);
  const [newest, ...older] = files;
  if (!newest) return createKeyFile(dir, label);
  const publicKey = (await localHost.exec('wg', ['pubkey'], await readFile(newest.path, 'utf8'))).trim();
  if (!isWireGuardKey(publicKey)) throw new Error(`${newest.path} holds no WireGuard key`);
  for (const f of older) await removeKeyFile({ publicKey: '', privateKeyFile: f.path });
  return { publicKey, privateKeyFile: newest.path };
}
