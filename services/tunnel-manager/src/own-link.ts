import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  bringUpLink,
  createKeyFile,
  ensureStateDir,
  forgetProcess,
  isWireGuardKey,
  type KeyFile,
  localHost,
  recordProcess,
  removeKeyFile,
  uniqueInterfaceName,
  type WireGuardLink,
} from '@switchyard/tunnels';

// This host's end of its WireGuard link, the edge's or a node host agent's: its key kept across
// restarts, and what a SIGKILLed run left taken down first. wireguard-go is ended through its pid
// file (endLeftovers); a kernel interface has no process, so its name is kept and it is deleted.

export type LinkLabel = 'edge' | 'host';

export const linkDir = (stateDir: string) => join(stateDir, 'wireguard');
const nameFile = (stateDir: string, label: LinkLabel) => join(linkDir(stateDir), `${label}.interface`);

/**
 * The newest `<label>-*.key` of the state directory's 0700 `wireguard/`, made if there is none,
 * so a restart comes back with the key its peer knows. Older files (a rotation a crash cut
 * short) are removed unless named in `keep`. The private half is read only to hand it to
 * `wg pubkey` on stdin.
 */
export async function currentKeyFile(stateDir: string, label: LinkLabel, keep: readonly string[] = []): Promise<KeyFile> {
  const dir = linkDir(stateDir);
  await ensureStateDir(dir);
  const names = (await readdir(dir)).filter((f) => f.startsWith(`${label}-`) && f.endsWith('.key'));
  const files = await Promise.all(names.map(async (f) => ({ path: join(dir, f), mtime: (await stat(join(dir, f))).mtimeMs })));
  files.sort((a, b) => b.mtime - a.mtime);
  const [newest, ...older] = files;
  if (!newest) return createKeyFile(dir, label);
  for (const f of older) if (!keep.includes(f.path)) await removeKeyFile({ publicKey: '', privateKeyFile: f.path });
  return keyFileAt(newest.path);
}

export async function keyFileAt(path: string): Promise<KeyFile> {
  const publicKey = (await localHost.exec('wg', ['pubkey'], await readFile(path, 'utf8'))).trim();
  if (!isWireGuardKey(publicKey)) throw new Error(`${path} holds no WireGuard key`);
  return { publicKey, privateKeyFile: path };
}

/** Brings up this host's end with `key`, after taking down the interface an earlier run left. */
export async function bringUpOwnLink(o: { stateDir: string; label: LinkLabel; key: KeyFile; range: string; address: string; listenPort: number }): Promise<WireGuardLink> {
  const left = await readFile(nameFile(o.stateDir, o.label), 'utf8').catch(() => '');
  if (/^sywg[0-9a-f]+$/.test(left.trim())) await localHost.exec('ip', ['link', 'del', 'dev', left.trim()]).catch(() => undefined);
  const link = await bringUpLink({
    host: localHost,
    config: { interfaceName: uniqueInterfaceName(), range: o.range, address: o.address, listenPort: o.listenPort, stateDir: linkDir(o.stateDir) },
    key: o.key,
  });
  await writeFile(nameFile(o.stateDir, o.label), link.name, { mode: 0o600 });
  if (link.pid) await recordProcess(o.stateDir, 'wireguard-go', link.pid, link.name);
  return link;
}

export async function takeDownOwnLink(link: WireGuardLink, stateDir: string, label: LinkLabel): Promise<void> {
  await link.down();
  await forgetProcess(stateDir, 'wireguard-go');
  await rm(nameFile(stateDir, label), { force: true });
}
