import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { originalDestination } from '../src/original-dst.js';

// SO_ORIGINAL_DST reads the kernel's connection tracking: an integration test with the kernel
// (a fresh network namespace without any nftables rule has no conntrack entry to read).
describe('original destination', () => {
  it('is the address dialled for a connection that was not redirected', async () => {
    let seen: unknown = 'not called';
    const server = createServer((s: Socket) => {
      s.on('error', () => {});
      seen = originalDestination(s);
      s.end();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    try {
      const c = connect(port, '127.0.0.1');
      c.resume();
      await once(c, 'end');
      expect(seen).toEqual({ address: '127.0.0.1', port });
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
