import { connect, type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { closedWithin } from '@switchyard/testkit/sockets';
import { testApp } from './fakes.js';

// Real sockets on loopback: what a client that connects and then sends nothing, or sends its
// request slowly, gets from the gateway's server.
describe('HTTP server timeouts', () => {
  const apps: Array<{ close(): Promise<unknown> }> = [];
  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close();
  });

  async function listening(timeouts?: { requestMs: number; connectionMs: number }) {
    const { app } = testApp({}, timeouts ? { timeouts } : {});
    apps.push(app);
    await app.listen({ host: '127.0.0.1', port: 0 });
    return (app.server.address() as AddressInfo).port;
  }

  it('closes a connection that stays quiet past HTTP_CONNECTION_TIMEOUT_MS', async () => {
    const port = await listening({ requestMs: 30_000, connectionMs: 1_000 });
    const s = connect(port, '127.0.0.1');
    s.on('error', () => {});
    await once(s, 'connect');
    // Half a request line, then nothing: a slowloris client.
    s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
    expect(await closedWithin(s, 10_000)).toBe(true);
  });

  it('sets the request timeout on the server', async () => {
    const port = await listening({ requestMs: 7_000, connectionMs: 20_000 });
    const app = apps.at(-1) as unknown as { server: { requestTimeout: number; timeout: number } };
    expect(port).toBeGreaterThan(0);
    expect(app.server.requestTimeout).toBe(7_000);
    expect(app.server.timeout).toBe(20_000);
  });
});
