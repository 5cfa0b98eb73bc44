import { spawn } from 'node:child_process';
import { eventually } from '@switchyard/testkit/async';
import { afterEach, describe, expect, it } from 'vitest';
import { type CommandHost, ReverseTunnel, type ReverseTunnelState } from '../src/index.js';

// The supervisor against a stand-in for ssh: real child processes (sh) that print what ssh -v
// prints and exit as ssh would. The real ssh and sshd are in tests/integration/tunnel-ssh.test.ts.

const UP = 'debug1: remote forward success for: listen 127.0.0.1:40001, connect 10.78.0.2:8080';

/** Each spawn runs the next script; the last one repeats. Records every command line. */
function fakeSsh(scripts: string[]): CommandHost & { calls: string[][]; pids: number[] } {
  const calls: string[][] = [];
  const pids: number[] = [];
  return {
    calls,
    pids,
    exec: async () => '',
    spawn(command, args) {
      calls.push([command, ...args]);
      const script = scripts[Math.min(calls.length - 1, scripts.length - 1)]!;
      const child = spawn('sh', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
      pids.push(child.pid!);
      return { pid: child.pid!, child };
    },
  };
}

const tunnels: ReverseTunnel[] = [];
afterEach(async () => {
  await Promise.all(tunnels.splice(0).map((t) => t.stop()));
});

function tunnel(host: CommandHost, over: Partial<ConstructorParameters<typeof ReverseTunnel>[0]> = {}) {
  const states: ReverseTunnelState[] = [];
  const t = new ReverseTunnel({
    host,
    edgeHost: '10.77.0.1',
    edgePort: 2222,
    user: 'switchyard-tunnel',
    identityPath: '/keys/t1',
    knownHostsPath: '/keys/edge.known_hosts',
    forward: { remotePort: 40001, targetHost: '10.78.0.2', targetPort: 8080 },
    backoff: { initialMs: 50, factor: 2, maxMs: 400, jitter: 0 },
    onState: (s) => states.push(s),
    ...over,
  });
  tunnels.push(t);
  return { t, states };
}

describe('ReverseTunnel', () => {
  it('is up when ssh reports the forward, and down with ssh’s own words when it ends', async () => {
    const host = fakeSsh([`echo '${UP}' >&2; sleep 0.3; echo 'Timeout, server 10.77.0.1 not responding.' >&2; exit 255`, `echo '${UP}' >&2; exec sleep 30`]);
    const { t, states } = tunnel(host);
    t.start();
    const up = await t.waitFor('up', 5000);
    expect(up.pid).toBe(host.pids[0]);
    const down = await t.waitFor('down', 5000);
    expect(down.reason).toBe('Timeout, server 10.77.0.1 not responding.');
    await t.waitFor('up', 5000);
    expect(states.map((s) => s.status)).toEqual(['connecting', 'up', 'down', 'connecting', 'up']);
    expect(host.calls[0]![0]).toBe('ssh');
    expect(host.calls[0]).toContain('127.0.0.1:40001:10.78.0.2:8080');
  });

  it('waits longer after each failure in a row, and starts counting again after a session was up', async () => {
    const fail = "echo 'switchyard-tunnel@10.77.0.1: Permission denied (publickey).' >&2; exit 255";
    const host = fakeSsh([fail, fail, fail, `echo '${UP}' >&2; exit 255`, fail, `echo '${UP}' >&2; exec sleep 30`]);
    const { t, states } = tunnel(host);
    t.start();
    await eventually(
      () => states.filter((s) => s.status === 'up').length,
      (n) => n === 2,
      10_000,
      'two sessions up',
      { intervalMs: 20 },
    );
    const downs = states.filter((s) => s.status === 'down');
    expect(downs.map((s) => s.failures)).toEqual([1, 2, 3, 0, 1]);
    expect(downs[0]!.reason).toBe('switchyard-tunnel@10.77.0.1: Permission denied (publickey).');
    // Gaps between a down and the next connecting: 50, 100, 200 ms, then 50 after the up session, then 50.
    const gaps = states.flatMap((s, i) => (s.status === 'connecting' && i > 0 ? [s.since.getTime() - states[i - 1]!.since.getTime()] : []));
    expect(gaps).toHaveLength(5);
    expect(gaps[2]!).toBeGreaterThanOrEqual(190);
    expect(gaps[1]!).toBeGreaterThanOrEqual(95);
  });

  it('a session not up in time is ended and counted as failed', async () => {
    const host = fakeSsh(['exec sleep 30', `echo '${UP}' >&2; exec sleep 30`]);
    const { t, states } = tunnel(host, { upTimeoutMs: 300 });
    t.start();
    await t.waitFor('up', 5000);
    expect(states.find((s) => s.status === 'down')).toMatchObject({ reason: 'not up within 300 ms', failures: 1 });
  });

  it('the session lifetime limit ends a session and starts the next at once', async () => {
    const host = fakeSsh([`echo '${UP}' >&2; exec sleep 30`]);
    const { t, states } = tunnel(host, { maxSessionMs: 300, backoff: { initialMs: 10_000, factor: 2, maxMs: 10_000, jitter: 0 } });
    t.start();
    await t.waitFor('up', 5000);
    await t.waitFor('down', 5000);
    await t.waitFor('up', 5000);
    expect(states.find((s) => s.status === 'down')!.reason).toBe('session lifetime reached');
    expect(host.pids).toHaveLength(2);
  });

  it('stop ends the session and cuts a backoff wait short', async () => {
    const host = fakeSsh(["echo 'Connection refused' >&2; exit 255"]);
    const { t } = tunnel(host, { backoff: { initialMs: 60_000, factor: 2, maxMs: 60_000, jitter: 0 } });
    t.start();
    await t.waitFor('down', 5000);
    const started = Date.now();
    await t.stop();
    expect(Date.now() - started).toBeLessThan(2000);
    expect(t.state.status).toBe('stopped');
  });

  it('retired: starts no other session, ends when drained', async () => {
    const host = fakeSsh([`echo '${UP}' >&2; exec sleep 30`]);
    const { t } = tunnel(host);
    t.start();
    const up = await t.waitFor('up', 5000);
    let drain!: () => void;
    const retired = t.retire(new Promise<void>((r) => (drain = r)), new Date(Date.now() + 60_000));
    expect(t.state.status).toBe('up');
    drain();
    await retired;
    expect(t.state.status).toBe('stopped');
    expect(host.pids).toEqual([up.pid]);
    expect(() => process.kill(up.pid!, 0)).toThrow();
  });

  it('retired: ends at the overlap’s end even if connections are still open', async () => {
    const host = fakeSsh([`echo '${UP}' >&2; exec sleep 30`]);
    const { t } = tunnel(host);
    t.start();
    await t.waitFor('up', 5000);
    await t.retire(new Promise(() => {}), new Date(Date.now() + 200));
    expect(t.state.status).toBe('stopped');
  });
});
