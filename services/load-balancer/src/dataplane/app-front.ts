import type { Socket } from 'node:net';
import type { DataPlane } from './plane.js';
import { dialForClient, EMPTY, spliceToNode } from './upstream.js';

/** One client of an app pool's port: plain TCP to a node of the pool; nothing to tell it when no node can take it. */
export function acceptAppClient(dp: DataPlane, sock: Socket, poolId: string): void {
  sock.on('error', () => undefined);
  const route = dp.router.poolRoute(poolId);
  dialForClient(dp, sock, route, { address: sock.remoteAddress }, undefined, () => undefined).then(
    (dialed) => dialed && spliceToNode(sock, dialed, EMPTY, dp.config.halfCloseTimeoutMs),
    () => {
      dp.counters.reject('failed');
      sock.destroy();
    },
  );
}
