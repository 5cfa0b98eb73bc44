/**
 * tunnel-manager's own paths against the direct connection, in one run, on real parts
 * (testkit's startTunnelAgents: the edge in a network namespace of its own, the node host's
 * agent on this machine, an http-app node published on 127.0.0.1). Tunnels are ordered through
 * the API, and clients run on this machine:
 *   direct     the node's published port, 127.0.0.1 (the reference)
 *   wireguard  a tunnel's endpoint on the edge whose only path is wireguard: the edge's
 *              forwarder, the WireGuard link (wireguard-go), the agent's listener and splice
 *   ssh        a tunnel's endpoint whose only path is ssh: the forwarder, the edge sshd's reverse
 *              tunnel from the agent's ssh client
 * Connect latency (curl's time_connect and time to first byte of `GET /`, a new connection
 * each, medians) and bulk throughput (`GET /bytes/<n>`, medians), interleaved. Then the
 * failover of a third tunnel with [wireguard, ssh] (probe interval 200 ms, fall 2, the default
 * probe timeout): WireGuard's UDP dropped at the edge while a client opens a new connection to
 * the endpoint every 20 ms; printed: the time from the drop to tunnel-manager's
 * tunnel.evt.failover, and to the first connection answered after the drop.
 *
 *   npx tsx bench/tunnel-agents.ts [latencyRounds=30] [bulkMiB=64] [bulkRounds=3]
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { eventually, startTunnelAgents, type TunnelAgents } from '@switchyard/testkit';
import { afterDrop, curlTimes, PROBING_CLIENT, printWays } from './support/tunnel-clients.js';

const latencyRounds = Math.max(5, Math.min(500, Number(process.argv[2] ?? 30)));
const bulkMiB = Math.max(1, Math.min(64, Number(process.argv[3] ?? 64)));
const bulkRounds = Math.max(1, Math.min(10, Number(process.argv[4] ?? 3)));
const run = promisify(execFile);
const curl = (url: string) => curlTimes(async (command, args) => (await run(command, args, { timeout: 90_000 })).stdout, url);

async function openTunnel(rig: TunnelAgents, name: string, paths: object[]): Promise<{ tunnelId: string; port: number }> {
  const placed = await rig.sys.http('POST', '/v1/tunnels', {
    body: { name, nodeId: rig.node.nodeId, port: rig.node.containerPort, paths, probeIntervalMs: 200, fall: 2, holdDownMs: 5000 },
  });
  if (placed.status !== 202) throw new Error(`POST /v1/tunnels ${name}: ${placed.status} ${JSON.stringify(placed.body)}`);
  const order = await rig.sys.waitForOrder(placed.body.id, ['fulfilled', 'failed'], { timeoutMs: 60_000 });
  if (order.status !== 'fulfilled') throw new Error(`tunnel ${name}: ${JSON.stringify(order)}`);
  const got = await eventually(
    () => rig.sys.http('GET', `/v1/tunnels/${placed.body.tunnelId}`),
    (r) => r.body.paths?.every((p: { state: string }) => p.state === 'up') && r.body.paths[0].active,
    30_000,
    `tunnel ${name}: its paths up`,
  );
  return { tunnelId: placed.body.tunnelId, port: got.body.endpoint.port };
}

async function main() {
  const dir = await mkdtemp(join(tmpdir(), 'sy-bench-tunnel-agents-'));
  const rig = await startTunnelAgents();
  try {
    const mesh = await openTunnel(rig, 'mesh', [{ kind: 'wireguard' }]);
    const reverse = await openTunnel(rig, 'reverse', [{ kind: 'ssh' }]);
    const both = await openTunnel(rig, 'both', [{ kind: 'wireguard' }, { kind: 'ssh' }]);
    const ways: Array<[string, string]> = [
      ['direct', `http://127.0.0.1:${rig.node.hostPort}`],
      ['wireguard', `http://${rig.edgeAddress}:${mesh.port}`],
      ['ssh', `http://${rig.edgeAddress}:${reverse.port}`],
    ];
    // Warm-up, and a check that every way reaches the app.
    for (const [, base] of ways) for (let i = 0; i < 3; i++) await curl(`${base}/`);

    const connect = new Map<string, number[]>(ways.map(([w]) => [w, []]));
    const firstByte = new Map<string, number[]>(ways.map(([w]) => [w, []]));
    for (let r = 0; r < latencyRounds; r++) {
      for (const [way, base] of ways) {
        const t = await curl(`${base}/`);
        connect.get(way)!.push(t.connect * 1000);
        firstByte.get(way)!.push(t.firstByte * 1000);
      }
    }
    const speed = new Map<string, number[]>(ways.map(([w]) => [w, []]));
    for (let r = 0; r < bulkRounds; r++) for (const [way, base] of ways) speed.get(way)!.push((await curl(`${base}/bytes/${bulkMiB * 1024 * 1024}`)).speed);

    console.log(`tunnel-agents: ${latencyRounds} connections per way (GET /), ${bulkRounds} × ${bulkMiB} MiB (GET /bytes), from this machine to the edge's endpoints`);
    printWays(ways, { connect, firstByte, speed }, 12);

    // Failover of the tunnel with both paths, timed from the client's side and by tunnel-manager's event.
    const script = join(dir, 'probing-client.mjs');
    await writeFile(script, PROBING_CLIENT);
    const client = spawn(process.execPath, [script, rig.edgeAddress, String(both.port), '8000'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    client.stdout.on('data', (c: Buffer) => (output += c.toString()));
    const exited = new Promise((resolve) => client.once('exit', resolve));
    await eventually(
      async () => output.split('\n').filter((l) => l.startsWith('{')).length,
      (n) => n >= 20,
      10_000,
      'the probing client answered',
    );
    const from = rig.events.seen.length;
    await rig.breakWireguard(true);
    const droppedAt = Date.now();
    const switched = await rig.events.next(
      (e) => rig.events.seen.indexOf(e) >= from && e.subject === 'tunnel.evt.failover' && e.data.tunnelId === both.tunnelId && e.data.to === 'ssh',
      15_000,
    );
    await exited;
    const after = afterDrop(output, droppedAt);
    console.log(
      `  failover (interval 200 ms, fall 2, default probe timeout): drop → tunnel.evt.failover ${Date.parse(switched.data.at) - droppedAt} ms; drop → first connection answered ${after.firstServedMs !== undefined ? `${after.firstServedMs} ms` : 'none'}; ${after.opened} connections opened after the drop, ${after.failed} failed, slowest ${after.slowestMs} ms`,
    );
    await rig.breakWireguard(false);
  } finally {
    await rig.close();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
process.exit(0);
