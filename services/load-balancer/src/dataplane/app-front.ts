import type { Socket } from 'node:net';
import { admitRoute, clientAddress } from './acl.js';
import type { DataPlane } from './plane.js';
import { dialForClient, EMPTY, spliceToNode } from './upstream.js';

/** One client of an app pool's port: plain TCP to a node of the pool; nothing to tell it when no node can take it. */
export function acceptAppClient(dp: DataPlane, sock: Socket, poolId: string): void {
  sock.on('error', () => undefined);
  const pool = dp.router.poolRoute(poolId);
  // A pool's policy judges its public port: the port the client dialled.
  const route = admitRoute(dp.acl, pool, { address: clientAddress(sock.remoteAddress) }, pool.pools[0]?.spec.publicPort ?? sock.localPort ?? 0, 'app');
  if (typeof route === 'string') {
    dp.counters.reject(route === 'denied' ? 'denied' : 'unavailable');
    sock.destroy();
    return;
  }
  dialForClient(dp, sock, route, { address: sock.remoteAddress }, undefined, () => undefined).then(
    (dialed) => dialed && spliceToNode(sock, dialed, EMPTY, dp.config.halfCloseTimeoutMs),
    () => {
      dp.counters.reject('failed');
      sock.destroy();
    },
  );
}
