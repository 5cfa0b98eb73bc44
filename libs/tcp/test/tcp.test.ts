import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { closedWithin, startBlackHole } from '@switchyard/testkit/sockets';
import { dial, firstAnswer, release, splice } from '../src/index.js';

// Real sockets on 127.0.0.1: each test scripts a server and looks at what its peer sees.

const cleanup: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanup.splice(0)) c();
});

async function listen(onConnection: (s: Socket) => void, opts: { allowHalfOpen?: boolean; pauseOnConnect?: boolean } = {}): Promise<number> {
  const sockets: Socket[] = [];
  const server: Server = createServer(opts, (s) => {
    sockets.push(s);
    s.on('error', () => {});
    onConnection(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanup.push(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return (server.address() as { port: number }).port;
}

function client(port: number, allowHalfOpen = true): Socket {
  const c = connect({ port, host: '127.0.0.1', allowHalfOpen });
  c.on('error', () => {});
  cleanup.push(() => c.destroy());
  return c;
}

/** Collects what a socket receives until its peer ends it, and how it ended. */
function collect(s: Socket): Promise<{ data: string; how: 'end' | 'close' }> {
  let data = '';
  s.on('data', (d) => (data += d));
  return new Promise((resolve) => {
    s.once('end', () => resolve({ data, how: 'end' }));
    s.once('close', () => resolve({ data, how: 'close' }));
  });
}

describe('dial', () => {
  it('connects a half-open capable socket, from the local address asked for', async () => {
    let seenFrom: string | undefined;
    const port = await listen((s) => {
      seenFrom = s.remoteAddress;
      s.end('hi');
    });
    const s = await dial({ host: '127.0.0.1', port, timeoutMs: 1000, localAddress: '127.0.0.2' });
    cleanup.push(() => s.destroy());
    expect(await collect(s)).toEqual({ data: 'hi', how: 'end' });
    expect(seenFrom).toBe('127.0.0.2');
    // Half-open: the peer's FIN leaves our side writable.
    expect(s.writable).toBe(true);
  });

  it('rejects with the error when nothing listens', async () => {
    const port = await listen(() => {});
    cleanup.pop()!();
    await expect(dial({ host: '127.0.0.1', port, timeoutMs: 1000 })).rejects.toThrow(/ECONNREFUSED/);
  });

  it('gives up on a connect that does not complete within the timeout', async () => {
    const port = await blackHole();
    const began = performance.now();
    await expect(dial({ host: '127.0.0.1', port, timeoutMs: 200 })).rejects.toThrow('connect timed out after 200 ms');
    expect(performance.now() - began).toBeGreaterThanOrEqual(190);
  });
});

/** A front port that dials `upstreamPort` and splices each client to it. */
async function splicer(upstreamPort: number, halfCloseMs: number, onClosed?: (front: Socket) => void): Promise<{ port: number; fronts: Socket[] }> {
  const fronts: Socket[] = [];
  const port = await listen(
    (front) => {
      fronts.push(front);
      void dial({ host: '127.0.0.1', port: upstreamPort, timeoutMs: 1000 }).then((up) => splice(front, up, { halfCloseMs, onClosed: () => onClosed?.(front) }));
    },
    { allowHalfOpen: true },
  );
  return { port, fronts };
}

describe('splice', () => {
  it('moves bytes both ways and passes a half-close on while the other direction goes on', async () => {
    const upstream = await listen(
      (s) => {
        let got = 0;
        s.on('data', (d: Buffer) => (got += d.length));
        s.on('end', () => s.end(`got ${got} bytes`));
      },
      { allowHalfOpen: true },
    );
    let closedBytes: { read: number; written: number } | undefined;
    const front = await splicer(upstream, 5000, (f) => (closedBytes = { read: f.bytesRead, written: f.bytesWritten }));
    const c = client(front.port);
    const answer = collect(c);
    c.end('x'.repeat(200_000));
    expect(await answer).toEqual({ data: 'got 200000 bytes', how: 'end' });
    await once(c, 'close');
    await expectEventually(() => closedBytes !== undefined);
    expect(closedBytes).toEqual({ read: 200_000, written: 'got 200000 bytes'.length });
  });

  it('writes what each side is owed before anything else', async () => {
    const upstream = await listen((s) => s.once('data', (d) => s.end(`upstream got ${d}`)), { allowHalfOpen: true });
    const port = await listen(
      (front) => {
        void dial({ host: '127.0.0.1', port: upstream, timeoutMs: 1000 }).then((up) =>
          splice(front, up, { halfCloseMs: 5000, toA: Buffer.from('owed to the client;'), toB: Buffer.from('owed') }),
        );
      },
      { allowHalfOpen: true, pauseOnConnect: true },
    );
    const c = client(port);
    expect(await collect(c)).toEqual({ data: 'owed to the client;upstream got owed', how: 'end' });
  });

  it('destroys both sides once one has ended and the other stays open past the bound', async () => {
    // The upstream answers and ends; the client never ends its side.
    const upstreamSockets: Socket[] = [];
    const upstream = await listen(
      (s) => {
        upstreamSockets.push(s);
        s.end('bye');
      },
      { allowHalfOpen: true },
    );
    let closed = 0;
    const front = await splicer(upstream, 200, () => closed++);
    const c = client(front.port);
    expect(await collect(c)).toEqual({ data: 'bye', how: 'end' });
    const began = performance.now();
    expect(await closedWithin(front.fronts[0]!, 3000)).toBe(true);
    expect(performance.now() - began).toBeGreaterThanOrEqual(150);
    // The upstream's socket closes once the splice has dropped its side.
    expect(await closedWithin(upstreamSockets[0]!, 3000)).toBe(true);
    await expectEventually(() => closed === 1);
  });

  it('cuts the other side at once when one side is reset', async () => {
    const upstream = await listen((s) => s.once('data', () => s.resetAndDestroy()));
    const front = await splicer(upstream, 60_000);
    // Not half-open: the front's FIN closes it.
    const c = client(front.port, false);
    c.write('hello');
    expect(await closedWithin(c, 3000)).toBe(true);
  });
});

describe('firstAnswer', () => {
  /** A client connection (its server side) and a dialled upstream, for firstAnswer to watch. */
  async function pair(onUpstream: (s: Socket) => void): Promise<{ c: Socket; front: Socket; up: Socket }> {
    const upstream = await listen(onUpstream, { allowHalfOpen: true });
    let front!: Socket;
    const port = await listen((s) => (front = s), { allowHalfOpen: true, pauseOnConnect: true });
    const c = client(port);
    await once(c, 'connect');
    const up = await dial({ host: '127.0.0.1', port: upstream, timeoutMs: 1000 });
    cleanup.push(() => up.destroy());
    await expectEventually(() => front !== undefined);
    return { c, front, up };
  }

  it("passes the client's bytes on and resolves with the upstream's first bytes", async () => {
    const { c, front, up } = await pair((s) => s.once('data', (d) => s.write(`echo ${d}`)));
    c.write('ping');
    const answer = await firstAnswer(front, up, 2000);
    expect(answer.toString()).toBe('echo ping');
  });

  it('tells an upstream that ended before answering from one that was reset', async () => {
    const ended = await pair((s) => s.once('data', () => s.end()));
    ended.c.write('x');
    expect(await firstAnswer(ended.front, ended.up)).toBe('upstream-ended');
    const reset = await pair((s) => s.once('data', () => s.resetAndDestroy()));
    reset.c.write('x');
    expect(await firstAnswer(reset.front, reset.up)).toBe('upstream-closed');
  });

  it('ends the wait when the client goes, or at the timeout', async () => {
    const gone = await pair(() => {});
    const waiting = firstAnswer(gone.front, gone.up);
    gone.c.resetAndDestroy();
    expect(await waiting).toBe('client-gone');
    const silent = await pair(() => {});
    expect(await firstAnswer(silent.front, silent.up, 100)).toBe('timeout');
  });
});

describe('release', () => {
  it('ends a connection with a FIN even when it sent data that was never read', async () => {
    const port = await listen((s) => setTimeout(() => release(s), 50), { allowHalfOpen: true, pauseOnConnect: true });
    const c = client(port, false);
    c.write('a request nobody read'.repeat(1000));
    expect(await collect(c)).toEqual({ data: '', how: 'end' });
  });

  it('cuts a peer that does not close its side within the grace', async () => {
    let front!: Socket;
    const port = await listen(
      (s) => {
        front = s;
        release(s, 100);
      },
      { allowHalfOpen: true },
    );
    const c = client(port);
    await once(c, 'end');
    expect(await closedWithin(front, 2000)).toBe(true);
  });
});

/** Waits (bounded) for a condition that follows from socket events. */
async function expectEventually(check: () => boolean, ms = 2000): Promise<void> {
  await vi.waitFor(() => expect(check()).toBe(true), { timeout: ms, interval: 10 });
}

/** A port that never completes a connect, closed after the test. */
async function blackHole(): Promise<number> {
  const hole = await startBlackHole();
  cleanup.push(() => hole.close());
  return hole.port;
}
