import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually, rejectionOf } from '@switchyard/testkit/async';
import { closedWithin, startBlackHole } from '@switchyard/testkit/sockets';
import { type Forwarder, type ForwarderEvent, type ForwarderOptions, ForwarderOptionError, type PathKind, probe, startForwarder } from '../src/index.js';

// Real sockets on 127.0.0.1. Each path's target is a server that answers every line with its
// own name, so a test knows which path carried a connection.

const HOST = '127.0.0.1';
const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

/** A server that answers each line `x` with `<name> x`; it can be closed and opened again on its port. */
interface TagServer {
  readonly name: string;
  readonly port: number;
  listen(): Promise<void>;
  /** Stops listening (connects are refused) and cuts the connections it has. */
  close(): Promise<void>;
  /** Connections accepted so far (probes count). */
  accepted(): number;
}

async function tagServer(name: string, listening = true): Promise<TagServer> {
  let server: Server | undefined;
  const sockets = new Set<Socket>();
  let accepted = 0;
  const open = async (port: number) => {
    server = createServer((s) => {
      accepted++;
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
      let buffered = '';
      s.on('data', (d) => {
        buffered += d;
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          s.write(`${name} ${buffered.slice(0, nl)}\n`);
          buffered = buffered.slice(nl + 1);
        }
      });
    });
    server.listen(port, HOST);
    await once(server, 'listening');
    return (server.address() as { port: number }).port;
  };
  const close = async () => {
    const s = server;
    server = undefined;
    if (!s) return;
    for (const socket of sockets) socket.destroy();
    s.close();
    await once(s, 'close');
  };
  // A port that was ours: nothing listens there until `listen()`.
  const port = await open(0);
  if (!listening) await close();
  cleanup.push(close);
  return { name, port, listen: async () => void (await open(port)), close, accepted: () => accepted };
}

/** A client connection to the forwarder that says lines and reads the answers. */
async function lineClient(port: number) {
  const s = connect({ port, host: HOST });
  s.on('error', () => {});
  cleanup.push(() => s.destroy());
  let buffered = '';
  let ended = false;
  s.on('data', (d) => (buffered += d));
  s.on('end', () => (ended = true));
  s.on('close', () => (ended = true));
  await once(s, 'connect');
  return {
    socket: s,
    /** The answer to `line`, or 'closed' if the connection ends without one. */
    async say(line: string): Promise<string> {
      s.write(`${line}\n`);
      return eventually(
        () => {
          const nl = buffered.indexOf('\n');
          if (nl >= 0) {
            const answer = buffered.slice(0, nl);
            buffered = buffered.slice(nl + 1);
            return answer;
          }
          return ended ? 'closed' : undefined;
        },
        (a) => a !== undefined,
        3000,
        `an answer to ${line}`,
        { intervalMs: 5 },
      ) as Promise<string>;
    },
  };
}

/** Which path's server answers a new connection ('closed' if none does). */
async function servedBy(port: number): Promise<string> {
  const c = await lineClient(port);
  const answer = await c.say('hello');
  c.socket.destroy();
  return answer === 'closed' ? answer : answer.split(' ')[0]!;
}

/** A forwarder on a free port whose events are kept, each with when it came. */
async function forwarder(opts: Omit<ForwarderOptions, 'host' | 'port' | 'onEvent'>) {
  const events: Array<{ event: ForwarderEvent; at: number }> = [];
  const fwd = await startForwarder({ host: HOST, port: 0, ...opts, onEvent: (event) => events.push({ event, at: performance.now() }) });
  cleanup.push(() => fwd.stop({ dropConnections: true }));
  /** The first event at or after index `from` that `match` accepts; waits for it (bounded). */
  const next = async (match: (e: ForwarderEvent) => boolean, ms: number, from = 0) => {
    const found = await eventually(
      () => events.slice(from).find((e) => match(e.event)),
      (e) => e !== undefined,
      ms,
      'forwarder event',
      { intervalMs: 5 },
    );
    return { ...found!, index: events.indexOf(found!) };
  };
  return { fwd, events, next };
}

const isSwitchTo = (to: PathKind | undefined) => (e: ForwarderEvent) => e.type === 'switch' && e.to === to;
const pathsOf = (...servers: TagServer[]) => servers.map((s) => ({ kind: s.name as PathKind, target: { host: HOST, port: s.port } }));
const connectionsOn = (fwd: Forwarder, kind: PathKind) => fwd.state().paths.find((p) => p.kind === kind)!.connections;

describe('startForwarder', () => {
  it('sends new connections over the preferred path while it is healthy', async () => {
    const servers = [await tagServer('wireguard'), await tagServer('ssh'), await tagServer('direct')];
    const { fwd, events } = await forwarder({ paths: pathsOf(...servers), intervalMs: 50 });
    for (let i = 0; i < 5; i++) expect(await servedBy(fwd.port)).toBe('wireguard');
    const state = fwd.state();
    expect(state.current).toBe('wireguard');
    expect(state.paths.map((p) => [p.kind, p.up, p.failures])).toEqual([
      ['wireguard', true, 0],
      ['ssh', true, 0],
      ['direct', true, 0],
    ]);
    for (const p of state.paths) expect(p.latencyMs).toBeGreaterThan(0);
    expect(events.map((e) => e.event.type)).toEqual(['path-up', 'path-up', 'path-up', 'switch']);
    expect(events[3]!.event).toEqual({ type: 'switch', from: undefined, to: 'wireguard', reason: 'using wireguard: first path, healthy' });
  });

  it('fails over within the probes that take a path down, fails back after the hold-down, and never moves an open connection', async () => {
    const [intervalMs, fall, holdDownMs] = [100, 2, 2000];
    const wireguard = await tagServer('wireguard', false);
    const ssh = await tagServer('ssh');
    const direct = await tagServer('direct');
    const { fwd, next } = await forwarder({ paths: pathsOf(wireguard, ssh, direct), intervalMs, probeTimeoutMs: 500, fall, rise: 1, holdDownMs });

    // WireGuard is down at the start: new connections, and the long-lived one, go over SSH.
    expect(fwd.state().current).toBe('ssh');
    expect((await next(isSwitchTo('ssh'), 0)).event).toMatchObject({ reason: 'using ssh: wireguard probe failed 1× (ECONNREFUSED)' });
    const held = await lineClient(fwd.port);
    expect(await held.say('1')).toBe('ssh 1');

    // WireGuard comes up: new connections stay on SSH until it has been up for the hold-down.
    await wireguard.listen();
    const up = await next((e) => e.type === 'path-up' && e.kind === 'wireguard', 3000);
    expect(await servedBy(fwd.port)).toBe('ssh');
    const back = await next(isSwitchTo('wireguard'), holdDownMs + 3000, up.index);
    expect(back.at - up.at).toBeGreaterThanOrEqual(holdDownMs - 5);
    expect(back.event).toMatchObject({ from: 'ssh', reason: expect.stringMatching(/^back to wireguard: healthy for [\d.]+ s$/) });
    expect(await servedBy(fwd.port)).toBe('wireguard');
    expect(await held.say('2')).toBe('ssh 2');

    // WireGuard breaks: new connections move to SSH once `fall` probes in a row have failed.
    await wireguard.close();
    // The bound: `fall` intervals, one more for the probe in flight, and slack for a busy machine.
    const over = await next(isSwitchTo('ssh'), fall * intervalMs + intervalMs + 2000, back.index);
    expect(over.event).toMatchObject({ from: 'wireguard', reason: `switched to ssh: wireguard probe failed ${fall}× (ECONNREFUSED)` });
    expect(await servedBy(fwd.port)).toBe('ssh');
    expect(await held.say('3')).toBe('ssh 3');

    // And back once more.
    await wireguard.listen();
    await next(isSwitchTo('wireguard'), holdDownMs + 3000, over.index);
    expect(await servedBy(fwd.port)).toBe('wireguard');
    expect(await held.say('4')).toBe('ssh 4');
    expect(connectionsOn(fwd, 'ssh')).toBe(1);

    held.socket.end();
    await eventually(
      () => connectionsOn(fwd, 'ssh'),
      (n) => n === 0,
      3000,
      'the held connection counted off',
    );
  });

  it('sends new connections to a path’s new target and leaves an open one where it was', async () => {
    const wireguard = await tagServer('wireguard');
    const ssh = await tagServer('ssh');
    const { fwd } = await forwarder({ paths: pathsOf(ssh, wireguard), intervalMs: 100 });
    const held = await lineClient(fwd.port);
    expect(await held.say('before')).toBe('ssh before');

    // The reverse tunnel came back on another port (a key rotation, say).
    const rotated = await tagServer('ssh-rotated');
    fwd.setTarget('ssh', { host: HOST, port: rotated.port });
    expect(await servedBy(fwd.port)).toBe('ssh-rotated');
    expect(await held.say('after')).toBe('ssh after');
    expect(fwd.state().paths[0]).toMatchObject({ kind: 'ssh', target: { host: HOST, port: rotated.port }, up: true, connections: 1 });

    // The old target going away is no longer the path's concern: the probes go to the new one.
    await ssh.close();
    const seen = rotated.accepted();
    await eventually(
      () => rotated.accepted(),
      (n) => n >= seen + 3,
      3000,
      'probes of the new target',
    );
    expect(fwd.state().paths[0]).toMatchObject({ up: true, failures: 0 });
    expect(await servedBy(fwd.port)).toBe('ssh-rotated');
  });

  it('counts a failed dial against its path and tries the next path', async () => {
    const wireguard = await tagServer('wireguard');
    const ssh = await tagServer('ssh');
    // Probes too rare to notice: only the dials find out.
    const { fwd, events, next } = await forwarder({ paths: pathsOf(wireguard, ssh), intervalMs: 600_000, fall: 2 });
    await wireguard.close();

    expect(await servedBy(fwd.port)).toBe('ssh');
    expect(fwd.state()).toMatchObject({ current: 'wireguard', paths: [{ kind: 'wireguard', up: true, failures: 1, lastError: 'ECONNREFUSED' }, { kind: 'ssh' }] });
    expect(events.filter((e) => e.event.type === 'switch')).toHaveLength(1);

    expect(await servedBy(fwd.port)).toBe('ssh');
    expect(fwd.state().current).toBe('ssh');
    expect((await next((e) => e.type === 'path-down', 0)).event).toEqual({
      type: 'path-down',
      kind: 'wireguard',
      target: { host: HOST, port: wireguard.port },
      reason: 'wireguard probe failed 2× (ECONNREFUSED)',
    });
    // Down now, so not dialled: its count stays.
    expect(await servedBy(fwd.port)).toBe('ssh');
    expect(fwd.state().paths[0]!.failures).toBe(2);
  });

  it('closes a new connection when no path takes it', async () => {
    const wireguard = await tagServer('wireguard');
    const ssh = await tagServer('ssh');
    const { fwd } = await forwarder({ paths: pathsOf(wireguard, ssh), intervalMs: 600_000 });
    await wireguard.close();
    await ssh.close();
    // One dial each: the chosen path, then the next.
    expect(await servedBy(fwd.port)).toBe('closed');
    expect(fwd.state().paths.map((p) => p.failures)).toEqual([1, 1]);

    // Nothing up from the start: no path at all.
    const none = await forwarder({ paths: pathsOf(wireguard), intervalMs: 600_000 });
    expect(none.fwd.state().current).toBeUndefined();
    expect(none.events.at(-1)!.event).toEqual({ type: 'switch', from: undefined, to: undefined, reason: 'no healthy path: wireguard probe failed 1× (ECONNREFUSED)' });
    expect(await servedBy(none.fwd.port)).toBe('closed');
  });

  it('stops listening and probing at stop, leaving open connections unless told to drop them', async () => {
    const ssh = await tagServer('ssh');
    const intervalMs = 50;
    const { fwd } = await forwarder({ paths: pathsOf(ssh), intervalMs });
    const held = await lineClient(fwd.port);
    expect(await held.say('a')).toBe('ssh a');

    await fwd.stop();
    expect(await probe({ host: HOST, port: fwd.port }, 1000)).toEqual({ ok: false, reason: 'ECONNREFUSED' });
    expect(await held.say('b')).toBe('ssh b');
    // No probe after stop: over four intervals the path's server sees no new connection.
    const seen = ssh.accepted();
    await sleep(4 * intervalMs);
    expect(ssh.accepted()).toBe(seen);
    // Stopped already, told now to drop what is left open.
    await fwd.stop({ dropConnections: true });
    expect(await closedWithin(held.socket, 2000)).toBe(true);

    const ssh2 = await tagServer('ssh');
    const second = await forwarder({ paths: pathsOf(ssh2), intervalMs: 50 });
    const cut = await lineClient(second.fwd.port);
    expect(await cut.say('a')).toBe('ssh a');
    await second.fwd.stop({ dropConnections: true });
    expect(await closedWithin(cut.socket, 2000)).toBe(true);
  });

  it('refuses bad options, naming the field', async () => {
    const paths = [{ kind: 'ssh' as const, target: { host: HOST, port: 2222 } }];
    const cases: Array<[Partial<ForwarderOptions>, string]> = [
      [{ paths: [] }, 'paths'],
      [{ paths: [...paths, { kind: 'ssh', target: { host: HOST, port: 2223 } }] }, 'paths[1].kind'],
      [{ paths: [{ kind: 'tor' as PathKind, target: { host: HOST, port: 1 } }] }, 'paths[0].kind'],
      [{ paths: [{ kind: 'ssh', target: { host: HOST, port: 0 } }] }, 'paths[0].target.port'],
      [{ paths: [{ kind: 'ssh', target: { host: '', port: 22 } }] }, 'paths[0].target.host'],
      [{ port: 70_000 }, 'port'],
      [{ intervalMs: 0 }, 'intervalMs'],
      [{ fall: 1.5 }, 'fall'],
      [{ holdDownMs: -1 }, 'holdDownMs'],
    ];
    for (const [bad, field] of cases) {
      const err = await rejectionOf(startForwarder({ host: HOST, port: 0, paths, ...bad }));
      expect(err, field).toBeInstanceOf(ForwarderOptionError);
      expect((err as ForwarderOptionError).field).toBe(field);
      expect((err as Error).message.startsWith(`${field}: `)).toBe(true);
    }

    const ssh = await tagServer('ssh');
    const { fwd } = await forwarder({ paths: pathsOf(ssh) });
    expect(() => fwd.setTarget('wireguard', { host: HOST, port: 1 })).toThrow('kind: this forwarder has no wireguard path (it has ssh)');
    expect(() => fwd.setTarget('ssh', { host: HOST, port: 0 })).toThrow(ForwarderOptionError);
    // A port someone else holds.
    expect(await rejectionOf(startForwarder({ host: HOST, port: fwd.port, paths: pathsOf(ssh) }))).toMatchObject({ code: 'EADDRINUSE' });
  });
});

describe('probe', () => {
  it('times a connect and closes it with a FIN', async () => {
    let ended: Promise<unknown> | undefined;
    const server = createServer((s) => {
      s.on('error', () => {});
      ended = once(s, 'end');
    });
    server.listen(0, HOST);
    await once(server, 'listening');
    cleanup.push(() => server.close());
    const result = await probe({ host: HOST, port: (server.address() as { port: number }).port }, 1000);
    expect(result).toMatchObject({ ok: true, latencyMs: expect.any(Number) });
    await eventually(
      () => ended,
      (e) => e !== undefined,
      2000,
      'the probe connection at the server',
      { intervalMs: 5 },
    );
    await ended;
  });

  it('says why a connect failed: refused, timed out, aborted', async () => {
    const closed = await tagServer('nobody', false);
    expect(await probe({ host: HOST, port: closed.port }, 1000)).toEqual({ ok: false, reason: 'ECONNREFUSED' });
    const port = await blackHole();
    expect(await probe({ host: HOST, port }, 200)).toEqual({ ok: false, reason: 'ETIMEDOUT' });
    const stop = new AbortController();
    const pending = probe({ host: HOST, port }, 5000, stop.signal);
    stop.abort();
    expect(await pending).toEqual({ ok: false, reason: 'ABORTED' });
  });
});

/** A port that never completes a connect, closed after the test. */
async function blackHole(): Promise<number> {
  const hole = await startBlackHole();
  cleanup.push(() => hole.close());
  return hole.port;
}
