import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { proxiedGet, startRoutingPeer, startNatsServer, freePort, startReady, LOOPBACK_LB_ENV, type RoutingPeer, type NatsServer, type ServiceProcess } from '@switchyard/testkit';
import { aNodeHealth, aNodeServing, aPoolView } from '@switchyard/testkit/fixtures';

async function listen(server: Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as { port: number }).port;
}

// A node killed while it handles a request closes its end of the connection the way any
// exiting process does: with a FIN after it read the request. The load balancer must take
// that as "no answer" and send the request to another node, not wait for a close that a
// half-open socket never reports (the failover bench caught requests hanging for 5 s).
describe('a node that goes away after reading a request', () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let peer: RoutingPeer;
  let lb: ServiceProcess;
  let proxyPort: number;
  const servers: Server[] = [];
  let dyingAccepted = 0;

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await nats.connect();
    peer = startRoutingPeer(nc);
    // Reads the request head, then ends its side without a byte of answer.
    const dying = createServer((s) => {
      dyingAccepted++;
      s.once('data', () => s.end());
      s.on('error', () => undefined);
    });
    // A minimal forward proxy that answers every absolute-form request itself.
    const answering = createServer((s) => {
      s.once('data', () => s.end('HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-via: 1.1 answering\r\nconnection: close\r\n\r\nhello'));
      s.on('error', () => undefined);
    });
    servers.push(dying, answering);
    const [dyingPort, answeringPort] = [await listen(dying), await listen(answering)];
    const tenantId = randomUUID();
    const pool = aPoolView({ name: 'jp', kind: 'exit', country: 'JP', strategy: 'round_robin' }, { tenantId });
    const nodes = [aNodeServing(pool, dyingPort), aNodeServing(pool, answeringPort)];
    peer.state.pools.push(pool);
    peer.state.nodes.push(...nodes);
    peer.state.health = nodes.map((n) => aNodeHealth(n, { status: 'healthy' }));
    proxyPort = await freePort();
    lb = await startReady('load-balancer', {
      NATS_URL: nats.url,
      ...nats.identityEnv('load-balancer'),
      REDIS_URL: process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379',
      LB_PROXY_PORT: String(proxyPort),
      LB_WORKERS: '1',
      SHUTDOWN_TIMEOUT_MS: '5000',
      ...LOOPBACK_LB_ENV,
    });
  });

  afterAll(async () => {
    await lb?.stop('SIGTERM');
    peer?.stop();
    await nc?.close();
    for (const s of servers) s.close();
    await nats?.stop();
  });

  it('is retried on another node, so every request is answered', async () => {
    const answers: string[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await proxiedGet(proxyPort, 'http://127.0.0.1:9/hello', 3_000);
      answers.push(`${res.status} ${res.body}`);
    }
    expect(answers).toEqual(Array(6).fill('200 hello'));
    // Round robin sent some of them to the dying node first: the retry was exercised.
    expect(dyingAccepted).toBeGreaterThanOrEqual(3);
  });
});
