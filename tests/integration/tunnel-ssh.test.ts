import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  docker,
  eventually,
  HTTP_APP_IMAGE,
  HTTP_APP_PORT,
  makeTestHosts,
  repoRoot,
  TEST_CONTAINER_LINK,
  TEST_LINK,
  type TestHostProcess,
  type TestHosts,
} from '@switchyard/testkit';
import {
  type ClientKey,
  generateClientKey,
  ReverseTunnel,
  type ReverseTunnelState,
  rotateRecords,
  type SshEdge,
  type SshKeyRecord,
  SshKeyStore,
  startSshEdge,
} from '@switchyard/tunnels';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The SSH path end to end with the real parts: Debian's sshd on the edge host, the OpenSSH client
// on the node's host (two network namespaces of this test), a real container behind the node's
// host, and the edge's AuthorizedKeysCommand asking this process's key store. Clients on the edge
// reach the container at 127.0.0.1:<remote port>, as the edge forwarder will.

const run = promisify(execFile);
const TUNNEL_USER = 'switchyard-tunnel';
const COMMAND_USER = 'switchyard-keys';
const SSHD_PORT = 2222;
const HOUR = 3600_000;
// Quick retries, so a reconnect shows within a test; jitter kept to show it does not break anything.
const BACKOFF = { initialMs: 200, factor: 2, maxMs: 2000, jitter: 0.5 };

let hosts: TestHosts;
let container: Awaited<ReturnType<typeof docker.createContainer>> | undefined;
let edge: SshEdge | undefined;
let edgeDir: string;
let nodeDir: string;
let workDir: string;
let knownHosts: string;
const store = new SshKeyStore(TUNNEL_USER);
const tunnels: ReverseTunnel[] = [];
let keyCount = 0;

/** A node key for `port`, generated on the node's host and registered at the edge. */
async function nodeKey(port: number, validity: Partial<SshKeyRecord> = {}): Promise<{ key: ClientKey; record: SshKeyRecord }> {
  const key = await generateClientKey(join(nodeDir, 'keys'), `t1.ssh.${++keyCount}`, hosts.node);
  const record: SshKeyRecord = {
    publicKey: key.publicKey,
    pathId: 't1.ssh',
    permitListenPort: port,
    validFrom: new Date(Date.now() - 60_000),
    validUntil: new Date(Date.now() + HOUR),
    ...validity,
  };
  store.put(record);
  return { key, record };
}

function tunnel(key: ClientKey, remotePort: number, over: { knownHostsPath?: string } = {}): { t: ReverseTunnel; states: ReverseTunnelState[] } {
  const states: ReverseTunnelState[] = [];
  const t = new ReverseTunnel({
    host: hosts.node,
    edgeHost: TEST_LINK.edge,
    edgePort: SSHD_PORT,
    user: TUNNEL_USER,
    identityPath: key.privateKeyPath,
    knownHostsPath: over.knownHostsPath ?? knownHosts,
    forward: { remotePort, targetHost: TEST_CONTAINER_LINK.container, targetPort: HTTP_APP_PORT },
    serverAliveIntervalSec: 2,
    serverAliveCountMax: 3,
    connectTimeoutSec: 5,
    backoff: BACKOFF,
    onState: (s) => states.push(s),
  });
  tunnels.push(t);
  t.start();
  return { t, states };
}

/** curl on the edge host, as a client of the tunnel's loopback port. */
function curlOnEdge(port: number): Promise<string> {
  return hosts.edge.exec('curl', ['-sS', '--max-time', '5', `http://127.0.0.1:${port}/`]);
}

/** A session refused by the edge: its first end, and that it never came up. */
async function refusal(key: ClientKey, remotePort: number, over: { knownHostsPath?: string } = {}): Promise<string> {
  const { t, states } = tunnel(key, remotePort, over);
  const down = await t.waitFor('down', 20_000);
  await t.stop();
  expect(states.filter((s) => s.status === 'up')).toEqual([]);
  return down.reason ?? '';
}

// A client on the edge that keeps one HTTP keep-alive connection through the tunnel and asks over
// it every 200 ms, printing each answer with its local port (the same port = the same connection).
// It ends by itself after 1500 requests; SIGTERM ends it early and it says so.
const HOLDING_CLIENT = `
import http from 'node:http';
const port = Number(process.argv[2]);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
let n = 0;
let stopping = false;
const seen = new Set();
const finish = () => {
  if (stopping) return;
  stopping = true;
  console.log('done ' + n);
  agent.destroy();
  setTimeout(() => process.exit(0), 50);
};
const ask = () => {
  // A question scheduled before the stop would dial afresh, into a port already retired.
  if (stopping) return;
  const req = http.get({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
    res.resume();
    res.on('end', () => {
      console.log('ok ' + ++n + ' ' + req.socket.localPort + ' ' + res.statusCode);
      next();
    });
  });
  req.on('socket', (s) => {
    if (seen.has(s)) return;
    seen.add(s);
    s.on('close', () => console.log(stopping ? 'closed at stop' : 'closed early'));
  });
  req.setTimeout(5000, () => req.destroy(new Error('no answer within 5 s')));
  req.on('error', (e) => {
    console.log('error ' + e.message);
    next();
  });
};
const next = () => (stopping || n >= 1500 ? finish() : setTimeout(ask, 200));
process.on('SIGTERM', finish);
ask();
`;

function answers(output: string): Array<{ n: number; localPort: number; status: number }> {
  return [...output.matchAll(/^ok (\d+) (\d+) (\d+)$/gm)].map((m) => ({ n: Number(m[1]), localPort: Number(m[2]), status: Number(m[3]) }));
}

beforeAll(async () => {
  await run('bash', [join(repoRoot, 'infra/tunnel-users.sh')]);
  hosts = await makeTestHosts();
  // Under /run, not /tmp: sshd runs its key command only from a path no one but root can write.
  edgeDir = `/run/switchyard-test-ssh-${hosts.id}`;
  nodeDir = await mkdtemp(join(tmpdir(), 'sy-ssh-node-'));
  workDir = await mkdtemp(join(tmpdir(), 'sy-ssh-work-'));
  await writeFile(join(workDir, 'holding-client.mjs'), HOLDING_CLIENT);

  container = await docker.createContainer({ Image: HTTP_APP_IMAGE, Labels: { 'io.switchyard.test': 'tunnel-ssh' }, HostConfig: { NetworkMode: 'none' } });
  await container.start();
  const pid = (await container.inspect()).State.Pid;
  await hosts.attachContainer(pid);
  // The app is reached from the node's host directly before any tunnel is involved.
  await eventually(
    () => hosts.node.exec('curl', ['-sS', '--max-time', '2', `http://${TEST_CONTAINER_LINK.container}:${HTTP_APP_PORT}/`]).catch((e: Error) => e.message),
    (out) => out.startsWith('hello from'),
    15_000,
    'the app answering on the node host',
  );

  edge = await startSshEdge({
    dir: edgeDir,
    listenAddress: TEST_LINK.edge,
    port: SSHD_PORT,
    tunnelUser: TUNNEL_USER,
    commandUser: COMMAND_USER,
    keys: store,
    host: hosts.edge,
    clientAliveIntervalSec: 2,
    clientAliveCountMax: 3,
  });
  knownHosts = join(nodeDir, 'edge.known_hosts');
  await writeFile(knownHosts, edge.knownHostsLine(), { mode: 0o644 });
}, 120_000);

afterAll(async () => {
  await Promise.all(tunnels.map((t) => t.stop().catch(() => undefined)));
  await edge?.stop().catch(() => undefined);
  await hosts?.remove();
  await container?.remove({ force: true }).catch(() => undefined);
  for (const d of [edgeDir, nodeDir, workDir]) if (d) await rm(d, { recursive: true, force: true });
});

describe('SSH path: a reverse tunnel from the node host to the edge sshd', () => {
  let first: { key: ClientKey; record: SshKeyRecord };
  let firstTunnel: ReverseTunnel;

  it("curl on the edge reaches the container's app through the tunnel; the key came from the key source, not a file", async () => {
    first = await nodeKey(40001);
    const asked = edge!.keySource.asked;
    firstTunnel = tunnel(first.key, 40001).t;
    await firstTunnel.waitFor('up', 30_000);
    expect(await curlOnEdge(40001)).toMatch(/^hello from /);
    expect(edge!.keySource.asked).toBeGreaterThan(asked);
    expect(edge!.log()).toMatch(new RegExp(`Accepted publickey for ${TUNNEL_USER} from ${TEST_LINK.node.replaceAll('.', '\\.')}`));
    // The private key never left the node's directory with anything wider than 0600.
    expect((await run('stat', ['-c', '%a', first.key.privateKeyPath])).stdout.trim()).toBe('600');
  });

  it('the ssh client killed: the supervisor starts a new session within its backoff', async () => {
    const before = firstTunnel.state;
    process.kill(before.pid!, 'SIGKILL');
    const down = await firstTunnel.waitFor('down', 10_000);
    expect(down.reason).toMatch(/SIGKILL/);
    // One failure-free retry waits at most initialMs; the session itself takes about a second here.
    const up = await firstTunnel.waitFor('up', 15_000);
    expect(up.pid).not.toBe(before.pid);
    expect(await curlOnEdge(40001)).toMatch(/^hello from /);
  });

  it('a key rotation with overlap: a connection held open through the old session keeps working, new ones use the new port', async () => {
    const client: TestHostProcess = hosts.edge.spawn('node', [join(workDir, 'holding-client.mjs'), '40001']);
    await eventually(
      () => answers(client.output()).length,
      (n) => n >= 5,
      15_000,
      'the held connection answering',
    );

    // Rotate: a new key for another port, the old one valid only to the end of the overlap.
    const nextKey = await generateClientKey(join(nodeDir, 'keys'), `t1.ssh.${++keyCount}`, hosts.node);
    const { retiring, next } = rotateRecords(first.record, { publicKey: nextKey.publicKey, permitListenPort: 40002 }, { now: new Date(), overlapMs: 120_000, lifetimeMs: HOUR });
    store.put(retiring);
    store.put(next);
    const newTunnel = tunnel(nextKey, 40002).t;
    await newTunnel.waitFor('up', 30_000);
    expect(await curlOnEdge(40002)).toMatch(/^hello from /);
    expect(firstTunnel.state.status).toBe('up');

    // The held connection goes on through the old session after the new one is up.
    const atSwitch = answers(client.output()).length;
    await eventually(
      () => answers(client.output()).length,
      (n) => n >= atSwitch + 10,
      15_000,
      'answers after the rotation',
    );
    expect(await edge!.openConnections(40001)).toBe(1);

    // The old session retires once its connection ends (here: the client is done).
    const retired = firstTunnel.retire(
      eventually(
        () => edge!.openConnections(40001),
        (n) => n === 0,
        60_000,
        'the old port drained',
        { intervalMs: 100 },
      ),
      retiring.validUntil,
    );
    await client.stop();
    await retired;
    expect(firstTunnel.state.status).toBe('stopped');

    const out = client.output();
    const seen = answers(out);
    expect(seen.length).toBeGreaterThanOrEqual(atSwitch + 10);
    expect(new Set(seen.map((a) => a.localPort)).size, out).toBe(1);
    expect(
      seen.every((a) => a.status === 200),
      out,
    ).toBe(true);
    // The lines themselves, so a failure says what happened (a stall, or the connection cut).
    expect(out.split('\n').filter((l) => /^(error|closed early)/.test(l))).toEqual([]);
    expect(out).toMatch(/^closed at stop$/m);

    // The old port is gone with its session; the new one serves.
    await expect(curlOnEdge(40001)).rejects.toThrow(/Connection refused|Failed to connect/);
    expect(await curlOnEdge(40002)).toMatch(/^hello from /);
    first = { key: nextKey, record: next };
    firstTunnel = newTunnel;
  });

  it('an expired key is refused by the edge', async () => {
    const { key } = await nodeKey(40003, { validFrom: new Date(Date.now() - 2 * HOUR), validUntil: new Date(Date.now() - 60_000) });
    expect(await refusal(key, 40003)).toMatch(/Permission denied \(publickey\)/);
    expect(edge!.log()).toMatch(/Failed publickey for switchyard-tunnel/);
  });

  it('a revoked key is refused from the moment it is revoked, with sshd left running', async () => {
    const { key } = await nodeKey(40004);
    const { t } = tunnel(key, 40004);
    await t.waitFor('up', 30_000);
    await t.stop();
    store.revoke(key.publicKey);
    expect(await refusal(key, 40004)).toMatch(/Permission denied \(publickey\)/);
  });

  it('a key for one port cannot listen on another (permitlisten): the session fails on its forward', async () => {
    const { key } = await nodeKey(40005);
    expect(await refusal(key, 40006)).toMatch(/remote port forwarding failed for listen port 40006/);
    await expect(curlOnEdge(40006)).rejects.toThrow(/Connection refused|Failed to connect/);
  });

  it('the edge host key is pinned: a node that pinned another key refuses to talk to this edge', async () => {
    const other = await generateClientKey(join(nodeDir, 'other'), 'not-the-edge', hosts.node);
    const wrongPin = join(nodeDir, 'wrong.known_hosts');
    const [type, blob] = other.publicKey.split(' ');
    await writeFile(wrongPin, `[${TEST_LINK.edge}]:${SSHD_PORT} ${type} ${blob}\n`);
    const asked = edge!.keySource.asked;
    expect(await refusal(first.key, 40002, { knownHostsPath: wrongPin })).toMatch(/Host key verification failed\.$/);
    // The client stopped before authenticating: the edge was never asked about its key.
    expect(edge!.keySource.asked).toBe(asked);
    expect((await readFile(wrongPin, 'utf8')).split('\n').filter(Boolean)).toHaveLength(1);
  });
});
