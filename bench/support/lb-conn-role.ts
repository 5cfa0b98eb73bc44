/**
 * One helper process of bench/lb-connections.ts (each process may open 20,000 files):
 *   backend              echo server on a free loopback port; prints "port <n>"
 *   client <ports> <n>   opens n connections spread over the comma-separated ports (one
 *                        port per ~28,000 connections: the ephemeral range is per destination),
 *                        each confirmed by an echoed byte; prints
 *                        "open <n> <ms>" (or "failed <n>") and holds them until SIGTERM
 */
import { createServer, connect, type Socket } from 'node:net';

const [role, ...args] = process.argv.slice(2);
const held: Socket[] = [];
process.on('SIGTERM', () => {
  for (const s of held) s.destroy();
  process.exit(0);
});

if (role === 'backend') {
  const server = createServer((s) => {
    s.on('error', () => undefined);
    s.pipe(s);
  });
  server.maxConnections = 19_000;
  server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => console.log(`port ${(server.address() as { port: number }).port}`));
} else if (role === 'client') {
  const ports = args[0]!.split(',').map(Number);
  const total = Number(args[1]);
  const inFlight = 256;
  let started = 0;
  let open = 0;
  let failed = 0;
  const t0 = performance.now();
  const one = () =>
    new Promise<void>((resolve) => {
      // No bind to a source address: bind() before connect() picks ports slowly and from one range.
      const s = connect({ port: ports[started % ports.length]!, host: '127.0.0.1' });
      started++;
      const timer = setTimeout(() => s.destroy(new Error('timeout')), 30_000);
      s.once('connect', () => s.write('x'));
      s.once('data', () => {
        clearTimeout(timer);
        held.push(s);
        open++;
        resolve();
      });
      s.once('error', () => {
        clearTimeout(timer);
        failed++;
        resolve();
      });
    });
  const lane = async () => {
    while (started < total) await one();
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  console.log(failed ? `failed ${failed} open ${open}` : `open ${open} ${(performance.now() - t0).toFixed(0)}`);
} else {
  console.error(`unknown role ${role}`);
  process.exit(2);
}
