import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';

// Socket helpers for unit tests with real sockets on loopback: no NATS, Docker or database code.

/** Resolves once the socket has closed; `false` if it is still open after `ms`. */
export function closedWithin(s: Socket, ms: number): Promise<boolean> {
  if (s.destroyed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    s.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/**
 * A loopback port that never completes a connect: a listener in another process (blocked, so it
 * never accepts) with a backlog of 1, its queue filled, so the kernel drops further SYNs. For
 * timeouts; `close()` ends the process and the fillers.
 */
export async function startBlackHole(): Promise<{ port: number; close(): void }> {
  const script = `const s = require('node:net').createServer().listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
    console.log(s.address().port);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20000);
  });`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const fillers: Socket[] = [];
  const close = () => {
    for (const f of fillers) f.destroy();
    child.kill();
  };
  const [line] = (await once(child.stdout!, 'data')) as [Buffer];
  const port = Number(line.toString().trim());
  // Two connections complete (maybe three); later SYNs are dropped.
  for (let i = 0; i < 3; i++) {
    const filler = connect({ port, host: '127.0.0.1' });
    filler.on('error', () => undefined);
    fillers.push(filler);
    await Promise.race([once(filler, 'connect'), new Promise((r) => setTimeout(r, 300))]);
  }
  return { port, close };
}
