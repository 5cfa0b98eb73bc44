import { writeFile } from 'node:fs/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually, type TestHostProcess } from '@switchyard/testkit';
import { clientLines, curl, type ForwarderProcess, HOLDING_CLIENT, startTunnelRig, type TunnelRig } from '@switchyard/testkit/tunnels';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// One tunnel with both managed paths, end to end with the real parts: the edge forwarder (in
// the edge's namespace) prefers WireGuard and falls back to the SSH reverse tunnel. The
// WireGuard path is broken by dropping its packets at the node's host; a connection opened on
// the SSH path stays there through every switch.

const INTERVAL_MS = 200;
const PROBE_TIMEOUT_MS = 300;
const FALL = 2;
const HOLD_DOWN_MS = 2_000;
/** How long a failure takes to become a switch at most: `FALL` failed probes, each up to an interval and a timeout apart. */
const FAILOVER_BOUND_MS = FALL * (INTERVAL_MS + PROBE_TIMEOUT_MS) + INTERVAL_MS + 1_000;

describe('a tunnel over WireGuard with an SSH fallback', () => {
  let rig: TunnelRig;
  let forwarder: ForwarderProcess;
  let dir: string;
  let held: TestHostProcess | undefined;
  const endpoint = () => `http://${rig.hosts.edge.address}:${forwarder.port}/`;
  /** The path the forwarder sends new connections to, as it says. */
  const current = async () => (await forwarder.state()).current;
  const switches = () => forwarder.events.filter((e) => e.type === 'switch');

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sy-tunnel-failover-'));
    rig = await startTunnelRig();
    forwarder = await rig.startForwarder({
      host: rig.hosts.edge.address,
      port: 0,
      paths: [
        { kind: 'wireguard', target: rig.targets.wireguard },
        { kind: 'ssh', target: rig.targets.ssh },
      ],
      intervalMs: INTERVAL_MS,
      probeTimeoutMs: PROBE_TIMEOUT_MS,
      fall: FALL,
      holdDownMs: HOLD_DOWN_MS,
    });
  }, 120_000);

  afterAll(async () => {
    await held?.stop();
    await rig?.remove();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('serves a real client through the edge endpoint over WireGuard, preferred while healthy', async () => {
    expect(await current()).toBe('wireguard');
    expect(await curl(rig.hosts.edge, endpoint())).toMatch(/^hello from [0-9a-f]{12}\n$/);
    const state = await forwarder.state();
    expect(state.paths.map((p) => [p.kind, p.up])).toEqual([
      ['wireguard', true],
      ['ssh', true],
    ]);
    // Both paths reach the same app: each answers on its own as well.
    expect(await curl(rig.hosts.edge, `http://${rig.targets.ssh.host}:${rig.targets.ssh.port}/`)).toMatch(/^hello from /);
  });

  it('WireGuard broken: new connections move to SSH within the probe bound; a connection opened there keeps working', async () => {
    const before = switches().length;
    const brokeAt = Date.now();
    await rig.breakWireGuard(true);
    await eventually(current, (c) => c === 'ssh', FAILOVER_BOUND_MS + 2_000, 'the switch to ssh');
    const toSsh = switches()
      .slice(before)
      .find((e) => e.type === 'switch' && e.to === 'ssh');
    expect(toSsh).toMatchObject({ from: 'wireguard', to: 'ssh' });
    expect(toSsh!.type === 'switch' && toSsh!.reason).toMatch(/^switched to ssh: wireguard probe failed 2×/);
    expect(toSsh!.readAt - brokeAt).toBeLessThan(FAILOVER_BOUND_MS);
    expect(await curl(rig.hosts.edge, endpoint())).toMatch(/^hello from /);
    // curl's connection closes at its end; the forwarder counts it gone a moment later.
    await eventually(
      async () => (await forwarder.state()).paths.find((p) => p.kind === 'ssh')!.connections,
      (n) => n === 0,
      5_000,
      'no connection open on ssh',
    );

    // A client holding one connection through the endpoint, now on the SSH path.
    const script = join(dir, 'holding-client.mjs');
    await writeFile(script, HOLDING_CLIENT);
    held = rig.hosts.edge.spawn('node', [script, rig.hosts.edge.address, String(forwarder.port)]);
    await eventually(
      () => clientLines(held!.output()),
      (ls) => ls.length >= 5 || ls.some((l) => l.error),
      15_000,
      'five answers on the held connection',
    );
    expect((await forwarder.state()).paths.find((p) => p.kind === 'ssh')!.connections).toBe(1);
  });

  it('WireGuard healthy again: new connections go back after the hold-down, the held connection stays on SSH', async () => {
    const before = switches().length;
    const restoredAt = Date.now();
    await rig.breakWireGuard(false);
    await eventually(current, (c) => c === 'wireguard', HOLD_DOWN_MS + FAILOVER_BOUND_MS + 2_000, 'the switch back to wireguard');
    const back = switches()
      .slice(before)
      .find((e) => e.type === 'switch' && e.to === 'wireguard');
    expect(back).toMatchObject({ from: 'ssh', to: 'wireguard' });
    expect(back!.type === 'switch' && back!.reason).toMatch(/^back to wireguard: healthy for [\d.]+ s$/);
    // Not before the hold-down: the path had to stay healthy that long first.
    expect(back!.readAt - restoredAt).toBeGreaterThanOrEqual(HOLD_DOWN_MS);
    expect(await curl(rig.hosts.edge, endpoint())).toMatch(/^hello from /);
    const paths = (await forwarder.state()).paths;
    expect(paths.find((p) => p.kind === 'ssh')!.connections).toBe(1);
  });

  it('WireGuard broken and restored once more: the held connection answered throughout, on one socket, with no error', async () => {
    const answeredBefore = clientLines(held!.output()).length;
    await rig.breakWireGuard(true);
    await eventually(current, (c) => c === 'ssh', FAILOVER_BOUND_MS + 2_000, 'the second switch to ssh');
    await rig.breakWireGuard(false);
    await eventually(current, (c) => c === 'wireguard', HOLD_DOWN_MS + FAILOVER_BOUND_MS + 2_000, 'the second switch back');
    await eventually(
      () => clientLines(held!.output()).length,
      (n) => n >= answeredBefore + 10,
      10_000,
      'ten more answers',
    );

    const lines = clientLines(held!.output());
    expect(lines.filter((l) => l.error)).toEqual([]);
    expect(new Set(lines.map((l) => l.localPort)).size).toBe(1);
    expect(held!.child.exitCode).toBeNull();
    // Four switches in all after the first choice, each logged with its reason.
    expect(switches().map((e) => e.type === 'switch' && `${e.from ?? '-'}→${e.to ?? '-'}`)).toEqual([
      '-→wireguard',
      'wireguard→ssh',
      'ssh→wireguard',
      'wireguard→ssh',
      'ssh→wireguard',
    ]);
  });
});
