/**
 * Tunnel paths against the direct connection, in one run, on real parts (libs/testkit's tunnel
 * rig: an edge and a node's host in network namespaces, an http-app container behind the
 * node's host). From the edge, to the same container port:
 *   direct     the node's host's published port on the link between the hosts (the reference)
 *   wireguard  over a wireguard-go link (userspace here: no kernel module on this machine)
 *   ssh        through the edge sshd's reverse tunnel from the node's host
 *   forwarder  the tunnel's endpoint: libs/tunnels' forwarder, sending connections over wireguard
 * Connect latency (curl's time_connect and time to first byte of `GET /`, one new connection
 * each, medians) and bulk throughput (`GET /bytes/<n>`, medians), then the failover: WireGuard's
 * packets dropped at the node's host while a client in the edge opens a new connection to the
 * endpoint every 20 ms; printed: the time from the drop to the forwarder's switch, and to the
 * first connection answered after it.
 *
 *   npx tsx bench/tunnels.ts [latencyRounds=30] [bulkMiB=64] [bulkRounds=3]
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually } from '@switchyard/testkit';
import { startTunnelRig, type TunnelRig } from '@switchyard/testkit/tunnels';
import { afterDrop, curlTimes as curlIn, PROBING_CLIENT, printWays } from './support/tunnel-clients.js';

const latencyRounds = Math.max(5, Math.min(500, Number(process.argv[2] ?? 30)));
const bulkMiB = Math.max(1, Math.min(64, Number(process.argv[3] ?? 64)));
const bulkRounds = Math.max(1, Math.min(10, Number(process.argv[4] ?? 3)));

/** curl in the edge's namespace. */
const curlTimes = (rig: TunnelRig, url: string) => curlIn((command, args) => rig.hosts.edge.exec(command, args), url);

async function main() {
  const dir = await mkdtemp(join(tmpdir(), 'sy-bench-tunnels-'));
  const rig = await startTunnelRig();
  try {
    const forwarder = await rig.startForwarder({
      host: rig.hosts.edge.address,
      port: 0,
      paths: [
        { kind: 'wireguard', target: rig.targets.wireguard },
        { kind: 'ssh', target: rig.targets.ssh },
      ],
      intervalMs: 200,
      probeTimeoutMs: 300,
      fall: 2,
      holdDownMs: 5_000,
    });
    const url = (t: { host: string; port: number }) => `http://${t.host}:${t.port}`;
    const ways: Array<[string, string]> = [
      ['direct', url(rig.targets.direct)],
      ['wireguard', url(rig.targets.wireguard)],
      ['ssh', url(rig.targets.ssh)],
      ['forwarder (wireguard)', url({ host: rig.hosts.edge.address, port: forwarder.port })],
    ];
    // Warm-up, and a check that every way reaches the app.
    for (const [, base] of ways) for (let i = 0; i < 3; i++) await curlTimes(rig, `${base}/`);

    const connect = new Map<string, number[]>(ways.map(([w]) => [w, []]));
    const firstByte = new Map<string, number[]>(ways.map(([w]) => [w, []]));
    // Interleaved, so every way sees the same machine.
    for (let r = 0; r < latencyRounds; r++) {
      for (const [way, base] of ways) {
        const t = await curlTimes(rig, `${base}/`);
        connect.get(way)!.push(t.connect * 1000);
        firstByte.get(way)!.push(t.firstByte * 1000);
      }
    }
    const speed = new Map<string, number[]>(ways.map(([w]) => [w, []]));
    for (let r = 0; r < bulkRounds; r++) {
      for (const [way, base] of ways) speed.get(way)!.push((await curlTimes(rig, `${base}/bytes/${bulkMiB * 1024 * 1024}`)).speed);
    }

    console.log(`tunnels: ${latencyRounds} connections per way (GET /), ${bulkRounds} × ${bulkMiB} MiB (GET /bytes), from the edge's namespace`);
    printWays(ways, { connect, firstByte, speed }, 22);

    // Failover: the drop, the switch, and the first connection answered after the drop.
    const script = join(dir, 'probing-client.mjs');
    await writeFile(script, PROBING_CLIENT);
    const client = rig.hosts.edge.spawn('node', [script, rig.hosts.edge.address, String(forwarder.port), '6000']);
    await eventually(
      () =>
        client
          .output()
          .split('\n')
          .filter((l) => l.startsWith('{')).length,
      (n) => n >= 20,
      10_000,
      'the probing client answered',
    );
    const switchesBefore = forwarder.events.filter((e) => e.type === 'switch').length;
    await rig.breakWireGuard(true);
    // Taken once the drop is in force: connections opened before it may still have gone over WireGuard.
    const droppedAt = Date.now();
    await eventually(
      () => client.child.exitCode,
      (c) => c !== null,
      15_000,
      'the probing client done',
    );
    const toSsh = forwarder.events.filter((e) => e.type === 'switch').slice(switchesBefore)[0];
    const after = afterDrop(client.output(), droppedAt);
    console.log(
      `  failover (interval 200 ms, probe timeout 300 ms, fall 2): drop → switch ${toSsh ? `${toSsh.readAt - droppedAt} ms` : 'none seen'}; drop → first connection answered ${after.firstServedMs !== undefined ? `${after.firstServedMs} ms` : 'none'}; ${after.opened} connections opened after the drop, ${after.failed} failed, slowest ${after.slowestMs} ms`,
    );
  } finally {
    await rig.remove();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
process.exit(0);
