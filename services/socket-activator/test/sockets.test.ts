import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { closedWithin } from '@switchyard/testkit/sockets';
import { forward, release } from '../src/forward.js';
import { probeOnce } from '../src/probe.js';

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function listen(onConnection: (s: Socket) => void, opts: { allowHalfOpen?: boolean; pauseOnConnect?: boolean } = {}): Promise<number> {
  const server = createServer(opts, (s) => {
    s.on('error', () => {});
    onConnection(s);
  });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as { port: number }).port;
}

const probe = (port: number) => probeOnce({ host: '127.0.0.1', port, settleMs: 20, connectTimeoutMs: 500 });

describe('probe', () => {
  it('is ready when the port accepts and keeps the connection', async () => {
    expect(await probe(await listen(() => {}))).toBe(true);
  });
  it('is ready at once when the server speaks first', async () => {
    expect(await probe(await listen((s) => s.write('220 hello\r\n')))).toBe(true);
  });
  it('is not ready when the connection is accepted and closed at once (a userland proxy with no app behind it)', async () => {
    expect(await probe(await listen((s) => s.destroy()))).toBe(false);
    expect(await probe(await listen((s) => s.end()))).toBe(false);
  });
  it('is not ready when nothing listens', async () => {
    const port = await listen(() => {});
    await new Promise((r) => servers.pop()!.close(r));
    expect(await probe(port)).toBe(false);
  });
});

/** Collects what a client receives until the other side ends it, and how it ended. */
function collect(s: Socket): Promise<{ data: string; how: 'end' | 'error' }> {
  let data = '';
  s.on('data', (d) => (data += d));
  return new Promise((resolve) => {
    s.once('end', () => resolve({ data, how: 'end' }));
    s.once('error', () => resolve({ data, how: 'error' }));
  });
}

describe('forwarding', () => {
  it('passes a half-close on: the client ends its side and still gets the whole answer', async () => {
    // The "node" answers only once the client has finished sending.
    const node = await listen(
      (s) => {
        let got = '';
        s.on('data', (d) => (got += d));
        s.on('end', () => s.end(`got ${got.length} bytes`));
      },
      { allowHalfOpen: true },
    );
    let firstByte = false;
    const front = await listen((s) => forward(s, { host: '127.0.0.1', port: node, onFirstByte: () => (firstByte = true) }), { allowHalfOpen: true, pauseOnConnect: true });
    const c = connect({ port: front, host: '127.0.0.1', allowHalfOpen: true });
    const answer = collect(c);
    c.end('x'.repeat(100_000));
    expect(await answer).toEqual({ data: 'got 100000 bytes', how: 'end' });
    expect(firstByte).toBe(true);
  });

  it('lets the client go with a FIN when the node refuses the connection', async () => {
    const closed = await listen(() => {});
    await new Promise((r) => servers.pop()!.close(r));
    let refused: Error | undefined;
    const front = await listen((s) => forward(s, { host: '127.0.0.1', port: closed, onRefused: (e) => (refused = e) }), { allowHalfOpen: true, pauseOnConnect: true });
    const c = connect(front, '127.0.0.1');
    c.write('hello');
    expect(await collect(c)).toEqual({ data: '', how: 'end' });
    expect(refused?.message).toMatch(/ECONNREFUSED/);
  });

  it('release ends a held connection with a FIN even when it sent data that was never read', async () => {
    const front = await listen((s) => setTimeout(() => release(s), 50), { allowHalfOpen: true, pauseOnConnect: true });
    const c = connect(front, '127.0.0.1');
    c.write('a request nobody read'.repeat(1000));
    expect(await collect(c)).toEqual({ data: '', how: 'end' });
  });

  it('a reset from the node ends the client', async () => {
    const node = await listen((s) =>
      s.once('data', () => {
        s.write('partial');
        setTimeout(() => s.resetAndDestroy(), 20);
      }),
    );
    const front = await listen((s) => forward(s, { host: '127.0.0.1', port: node }), { allowHalfOpen: true, pauseOnConnect: true });
    const c = connect(front, '127.0.0.1');
    c.write('hello');
    let data = '';
    c.on('data', (d) => (data += d));
    c.on('error', () => {});
    await once(c, 'close');
    expect(data).toBe('partial');
  });

  it('dials a just-woken node again while it turns the connection away, and sends what the client sent again', async () => {
    // The first two connections are accepted and closed at once, as Docker's userland proxy
    // does while the app is not listening; the third is the app.
    let accepted = 0;
    const seen: string[] = [];
    const node = await listen(
      (s) => {
        accepted++;
        if (accepted <= 2) return s.destroy();
        let got = '';
        s.on('data', (d) => {
          got += d;
          if (got.endsWith('\r\n\r\n')) {
            seen.push(got);
            s.end('HTTP/1.0 200 OK\r\n\r\nhi');
          }
        });
      },
      { allowHalfOpen: true },
    );
    const front = await listen((s) => forward(s, { host: '127.0.0.1', port: node, redial: { forMs: 2000, everyMs: 10 } }), { allowHalfOpen: true, pauseOnConnect: true });
    const c = connect(front, '127.0.0.1');
    c.write('GET / HTTP/1.0\r\n');
    setTimeout(() => c.write('\r\n'), 5);
    expect(await collect(c)).toEqual({ data: 'HTTP/1.0 200 OK\r\n\r\nhi', how: 'end' });
    expect(accepted).toBe(3);
    expect(seen).toEqual(['GET / HTTP/1.0\r\n\r\n']);
  });

  it('keeps the client flowing to a node that ended its side before a byte, once no re-dial is left', async () => {
    // The node sends its FIN at once and reads on; the client then sends more than a re-dial keeps.
    let received = 0;
    const nodeDone = new Promise<number>((resolve) =>
      listen(
        (s) => {
          s.end();
          s.on('data', (d: Buffer) => (received += d.length));
          s.on('end', () => resolve(received));
        },
        { allowHalfOpen: true },
      ).then((node) =>
        listen((s) => forward(s, { host: '127.0.0.1', port: node, redial: { forMs: 0, everyMs: 10 } }), { allowHalfOpen: true, pauseOnConnect: true }).then((front) => {
          const c = connect({ port: front, host: '127.0.0.1', allowHalfOpen: true });
          c.on('error', () => {});
          c.once('end', () => c.end(Buffer.alloc(3 << 20)));
        }),
      ),
    );
    expect(await Promise.race([nodeDone, new Promise((r) => setTimeout(() => r('timed out'), 5000))])).toBe(3 << 20);
  });

  it('does not dial again once the time for it is over: the client gets a FIN, and the wake hears the node turned it away', async () => {
    const node = await listen((s) => s.destroy());
    let turnedAway = 0;
    const front = await listen((s) => forward(s, { host: '127.0.0.1', port: node, redial: { forMs: 100, everyMs: 10 }, onTurnedAway: () => turnedAway++ }), {
      allowHalfOpen: true,
      pauseOnConnect: true,
    });
    const c = connect(front, '127.0.0.1');
    c.write('hello');
    const began = Date.now();
    expect(await collect(c)).toEqual({ data: '', how: 'end' });
    expect(Date.now() - began).toBeGreaterThanOrEqual(90);
    expect(turnedAway).toBe(1);
  });

  it('tells a refused dial as turned away once no re-dial is left, and an answered connection not', async () => {
    const closed = await listen(() => {});
    await new Promise((r) => servers.pop()!.close(r));
    let refused = 0;
    const front = await listen((s) => forward(s, { host: '127.0.0.1', port: closed, redial: { forMs: 50, everyMs: 10 }, onTurnedAway: () => refused++ }), {
      allowHalfOpen: true,
      pauseOnConnect: true,
    });
    expect(await collect(connect(front, '127.0.0.1'))).toEqual({ data: '', how: 'end' });
    expect(refused).toBe(1);

    let answeredTurnedAway = 0;
    const node = await listen((s) => s.end('hi'));
    const front2 = await listen((s) => forward(s, { host: '127.0.0.1', port: node, redial: { forMs: 50, everyMs: 10 }, onTurnedAway: () => answeredTurnedAway++ }), {
      allowHalfOpen: true,
      pauseOnConnect: true,
    });
    expect(await collect(connect(front2, '127.0.0.1'))).toEqual({ data: 'hi', how: 'end' });
    expect(answeredTurnedAway).toBe(0);
  });
});

/** Writes a byte every 50 ms (at most `times`) until the socket is closed: a peer that never ends its side notices a release only by its reset. */
function keepTalking(s: Socket, times = 100): void {
  let left = times;
  const tick = () => {
    if (s.destroyed || s.writableEnded || left-- <= 0) return;
    s.write('.');
    setTimeout(tick, 50).unref();
  };
  tick();
}

describe('a half-closed forwarded connection', () => {
  // What forward holds: the client socket it was given (`front`) and its own to the node
  // (seen as the node's socket, which closes once the activator lets it go).
  async function forwarded(node: (s: Socket) => void, client: (c: Socket) => void) {
    const nodeSockets: Socket[] = [];
    let nodeEnded!: Promise<unknown>;
    const nodePort = await listen(
      (s) => {
        nodeSockets.push(s);
        sockets.push(s);
        nodeEnded = once(s, 'end');
        node(s);
      },
      { allowHalfOpen: true },
    );
    let front: Socket | undefined;
    const frontPort = await listen(
      (s) => {
        front = s;
        forward(s, { host: '127.0.0.1', port: nodePort, halfCloseMs: HALF_CLOSE_MS });
      },
      { allowHalfOpen: true, pauseOnConnect: true },
    );
    const c = connect({ port: frontPort, host: '127.0.0.1', allowHalfOpen: true });
    c.on('error', () => {});
    sockets.push(c);
    const clientEnded = once(c, 'end');
    client(c);
    await vi.waitFor(() => expect(front && nodeSockets[0]).toBeTruthy(), { timeout: 2000 });
    return { front: front!, node: nodeSockets[0]!, client: c, clientEnded, nodeEnded };
  }

  const HALF_CLOSE_MS = 200;
  // Generous for a loaded machine, far below "forever".
  const BOUND_MS = HALF_CLOSE_MS + 2000;
  const sockets: Socket[] = [];
  afterEach(() => {
    for (const s of sockets.splice(0)) s.destroy();
  });

  it('is released when the node ended its side and the client never ends its own', async () => {
    const f = await forwarded(
      (s) => s.once('data', () => s.end('answer')),
      (c) => {
        c.write('request');
        c.resume();
        keepTalking(c);
      },
    );
    await f.clientEnded;
    expect(await closedWithin(f.front, BOUND_MS)).toBe(true);
    expect(await closedWithin(f.node, BOUND_MS)).toBe(true);
  });

  it('is released when the client ended its side and the node never ends its own', async () => {
    const f = await forwarded(
      (s) => {
        s.resume();
        s.once('data', () => keepTalking(s));
      },
      (c) => {
        c.end('request');
        c.resume();
      },
    );
    await f.nodeEnded;
    expect(await closedWithin(f.front, BOUND_MS)).toBe(true);
    expect(await closedWithin(f.node, BOUND_MS)).toBe(true);
  });

  it('is released when the client ended its side and the node never answers at all', async () => {
    const f = await forwarded(
      (s) => s.resume(),
      (c) => c.end('request'),
    );
    await f.nodeEnded;
    expect(await closedWithin(f.front, BOUND_MS)).toBe(true);
  });

  it('is not cut before the bound while the other direction still flows', async () => {
    // The node answers 100 ms after the client half-closed, within the bound.
    const f = await forwarded(
      (s) => {
        s.resume();
        s.once('end', () => setTimeout(() => s.end('late answer'), 100));
      },
      (c) => c.end('request'),
    );
    expect(await collect(f.client)).toEqual({ data: 'late answer', how: 'end' });
  });
});
