import { once } from 'node:events';
import { connect, createServer, type AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { PoolSpec } from '@switchyard/contracts';
import { AppListeners } from '../src/listeners.js';
import type { RoutePool } from '../src/table.js';

const tenantId = '0b3c2f0e-5d4a-4f1e-9f7a-1c2d3e4f5a6b';

function appPool(id: string, publicPort: number): RoutePool {
  const spec = { name: id, kind: 'app', image: 'x', nodes: { min: 1, max: 1 }, publicPort } as unknown as PoolSpec;
  return { id, tenantId, name: id, spec, members: [] };
}

function recordingLog() {
  const warnings: string[] = [];
  const log = { warn: (_o: unknown, msg: string) => warnings.push(msg) } as unknown as Logger;
  return { log, warnings };
}

async function freePort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

const cleanup: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanup.splice(0)) c();
});

async function settle(): Promise<void> {
  await new Promise((r) => setTimeout(r, 50));
}

describe('app pool listeners', () => {
  it('never opens a proxy port or a port another pool holds, and says so once', async () => {
    const [proxy, shared] = [await freePort(), await freePort()];
    const { log, warnings } = recordingLog();
    const accepted: string[] = [];
    const apps = new AppListeners('127.0.0.1', new Set([proxy]), log, (sock, poolId) => {
      accepted.push(poolId);
      sock.destroy();
    });
    cleanup.push(() => apps.close());
    const pools = [appPool('a', proxy), appPool('b', shared), appPool('c', shared)];
    apps.sync(pools);
    apps.sync(pools);
    await settle();
    expect(warnings).toEqual(['app pool publicPort is a proxy port; not listening', 'app pool publicPort is taken by another pool; not listening']);
    const c = connect({ port: shared, host: '127.0.0.1' });
    c.on('error', () => undefined);
    await once(c, 'close');
    expect(accepted).toEqual(['b']);
    // Once the holder goes, the other pool gets the port.
    apps.sync([pools[2]!]);
    await settle();
    const d = connect({ port: shared, host: '127.0.0.1' });
    d.on('error', () => undefined);
    await once(d, 'close');
    expect(accepted).toEqual(['b', 'c']);
  });

  it('survives a port some other process holds, and listens once it is free', async () => {
    const blocker = createServer().listen(0, '127.0.0.1');
    await once(blocker, 'listening');
    const { port } = blocker.address() as AddressInfo;
    const { log, warnings } = recordingLog();
    const apps = new AppListeners('127.0.0.1', new Set(), log, (sock) => sock.destroy());
    cleanup.push(() => apps.close());
    apps.sync([appPool('a', port)]);
    await settle();
    expect(warnings).toEqual(['cannot listen for app pool']);
    await new Promise((r) => blocker.close(r));
    apps.sync([appPool('a', port)]);
    await settle();
    const c = connect({ port, host: '127.0.0.1' });
    const err = await Promise.race([once(c, 'connect').then(() => undefined), once(c, 'error').then(([e]) => e as Error)]);
    c.destroy();
    expect(err).toBeUndefined();
  });
});
