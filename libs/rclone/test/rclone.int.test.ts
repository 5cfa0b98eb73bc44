import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Progress, progressOf, RcError, type Rcd, startCopy, startRcd, stopJob, waitForJob } from '../src/index.js';

// Real rclone (Debian's package): `rclone rcd` on loopback, local directories as remotes.
describe('rclone rcd as the copy engine', () => {
  let dir: string;
  let rcd: Rcd;
  const tree = async (root: string): Promise<Record<string, string>> => {
    const out: Record<string, string> = {};
    for (const e of await readdir(root, { recursive: true, withFileTypes: true })) {
      if (!e.isFile()) continue;
      const path = join(e.parentPath, e.name);
      out[path.slice(root.length + 1)] = createHash('sha256')
        .update(await readFile(path))
        .digest('hex');
    }
    return out;
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sy-rclone-'));
    rcd = await startRcd({ stateDir: join(dir, 'state') });
  });
  afterAll(async () => {
    await rcd?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('serves on loopback only to its credentials, which no command line shows', async () => {
    expect(rcd.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const anonymous = await fetch(`${rcd.url}/rc/noop`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    expect(anonymous.status).toBe(401);
    expect(await rcd.call('rc/noop', { hello: 'x' })).toEqual({ hello: 'x' });
    const argv = (await readFile(`/proc/${rcd.pid}/cmdline`, 'utf8')).split('\0').join(' ');
    expect(argv).not.toMatch(/pass|user/);
    expect((await stat(rcd.configPath)).mode & 0o777).toBe(0o600);
  });

  it("keeps a remote made through the rc API in its 0600 config, and refuses an unknown backend with rclone's reason", async () => {
    await rcd.call('config/create', { name: 'backup', type: 'local', parameters: {} });
    expect(await readFile(rcd.configPath, 'utf8')).toContain('[backup]');
    await expect(rcd.call('config/create', { name: 'nope', type: 'no-such-backend', parameters: {} })).rejects.toThrow(RcError);
    await expect(rcd.call('config/create', { name: 'nope', type: 'no-such-backend', parameters: {} })).rejects.toThrow(/no-such-backend/);
  });

  it('syncs a tree as an async job with progress read per job, byte for byte', async () => {
    const src = join(dir, 'src');
    await mkdir(join(src, 'sub'), { recursive: true });
    for (let i = 0; i < 50; i++) await writeFile(join(src, 'sub', `small-${i}.txt`), randomBytes(1000 + i));
    await writeFile(join(src, 'large.bin'), randomBytes(8 * 1024 * 1024));
    const seen: Progress[] = [];
    const job = await startCopy(rcd, 'sync', { srcFs: src, dstFs: 'backup:' + join(dir, 'dst'), group: 'job-1' });
    const status = await waitForJob(rcd, job, 'job-1', { intervalMs: 100, timeoutMs: 60_000, onProgress: (p) => seen.push(p) });
    expect(status, JSON.stringify(status)).toMatchObject({ finished: true, success: true, error: '' });
    expect(await tree(join(dir, 'dst'))).toEqual(await tree(src));
    const last = seen.at(-1)!;
    expect(last.transfers).toBe(51);
    expect(last.bytes).toBe(8 * 1024 * 1024 + 50 * 1000 + (49 * 50) / 2);
    expect(last.errors).toBe(0);
  });

  it('stops a job midway, and the next run of it completes the copy', async () => {
    const slow = await startRcd({ stateDir: join(dir, 'slow'), flags: ['--bwlimit', '2M'] });
    try {
      const src = join(dir, 'big');
      await mkdir(src, { recursive: true });
      await writeFile(join(src, 'a.bin'), randomBytes(6 * 1024 * 1024));
      await writeFile(join(src, 'b.bin'), randomBytes(6 * 1024 * 1024));
      const dst = join(dir, 'big-copy');
      const job = await startCopy(slow, 'copy', { srcFs: src, dstFs: dst, group: 'big-1' });
      const progress: Progress[] = [];
      // Stopped once it has copied something, well before it is done (2 MiB/s, 12 MiB).
      for (let i = 0; i < 50 && !(progress.at(-1)?.bytes ?? 0); i++) {
        await new Promise((r) => setTimeout(r, 100));
        progress.push(await progressOf(slow, 'big-1'));
      }
      expect(progress.at(-1)!.bytes).toBeGreaterThan(0);
      await stopJob(slow, job);
      const stopped = await waitForJob(slow, job, 'big-1', { intervalMs: 100, timeoutMs: 10_000 });
      expect(stopped).toMatchObject({ finished: true, success: false });
      expect(Object.keys(await tree(dst).catch(() => ({})))).not.toEqual(['a.bin', 'b.bin']);

      const again = await startCopy(slow, 'copy', { srcFs: src, dstFs: dst, group: 'big-2' });
      const done = await waitForJob(slow, again, 'big-2', { intervalMs: 250, timeoutMs: 30_000 });
      expect(done).toMatchObject({ finished: true, success: true });
      expect(await tree(dst)).toEqual(await tree(src));
    } finally {
      await slow.stop();
    }
  });

  it('ends rclone on stop', async () => {
    const other = await startRcd({ stateDir: join(dir, 'other') });
    await other.stop();
    expect(other.exited()).toBe(true);
    await expect(other.call('rc/noop')).rejects.toThrow();
  });
});
