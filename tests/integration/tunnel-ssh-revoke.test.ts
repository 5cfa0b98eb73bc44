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
import { generateClientKey, type SessionCutEvent, type SshEdge, type SshKeyRecord, SshKeyStore, sshClientArgs, sshFingerprint, startSshEdge } from '@switchyard/tunnels';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The edge ending SSH sessions by itself, with the real parts: Debian's sshd on the edge host,
// the OpenSSH client on the node's host (two network namespaces of this test), a real container
// behind the node's host. The client here is a bare `ssh -N -R` (not the ReverseTunnel
// supervisor), so nothing on the node's side ends or renews a session: whatever ends one is the
// edge. Two edges in the edge's namespace:
//   timed      checks every second, the default age limit (25 h)
//   on demand  no timer, only enforce(); an age limit of a few seconds

const run = promisify(execFile);
const TUNNEL_USER = 'switchyard-tunnel';
const COMMAND_USER = 'switchyard-keys';
const HOUR = 3600_000;
const TIMED = { port: 2222, intervalMs: 1000 };
const ON_DEMAND = { port: 2223, maxSessionMs: 6000 };
/** The timed edge's interval, with room for a loaded machine: the deadline a cut must meet. */
const CUT_WITHIN_MS = 10 * TIMED.intervalMs;

let hosts: TestHosts;
let container: Awaited<ReturnType<typeof docker.createContainer>> | undefined;
const edges: SshEdge[] = [];
let timed: SshEdge;
let onDemand: SshEdge;
const cuts: Array<SessionCutEvent & { edge: string }> = [];
const dirs: string[] = [];
let nodeDir: string;
const store = new SshKeyStore(TUNNEL_USER);
let keyCount = 0;

interface Session {
  record: SshKeyRecord;
  fingerprint: string;
  port: number;
  ssh: TestHostProcess;
}

function exitedProcess(p: TestHostProcess): boolean {
  return p.child.exitCode !== null || p.child.signalCode !== null;
}

/** A key for `port` valid as given, generated on the node's host, and an `ssh -N -R` with it to `edge`, up. */
async function openSession(edge: SshEdge, port: number, validity: Partial<SshKeyRecord> = {}): Promise<Session> {
  const key = await generateClientKey(join(nodeDir, 'keys'), `t.ssh.${++keyCount}`, hosts.node);
  const record: SshKeyRecord = {
    publicKey: key.publicKey,
    pathId: `t.ssh.${keyCount}`,
    permitListenPort: port,
    validFrom: new Date(Date.now() - 60_000),
    validUntil: new Date(Date.now() + HOUR),
    ...validity,
  };
  store.put(record);
  const knownHosts = join(nodeDir, `edge-${edge.port}.known_hosts`);
  await writeFile(knownHosts, edge.knownHostsLine(), { mode: 0o644 });
  const ssh = hosts.node.spawn(
    'ssh',
    sshClientArgs({
      edgeHost: TEST_LINK.edge,
      edgePort: edge.port,
      user: TUNNEL_USER,
      identityPath: key.privateKeyPath,
      knownHostsPath: knownHosts,
      forward: { remotePort: port, targetHost: TEST_CONTAINER_LINK.container, targetPort: HTTP_APP_PORT },
      // Long enough that the client's own liveness check never ends a session within a test.
      serverAliveIntervalSec: 30,
      serverAliveCountMax: 3,
      connectTimeoutSec: 5,
    }),
  );
  await eventually(
    () => ssh.output(),
    (out) => out.includes(`remote forward success for: listen 127.0.0.1:${port}`) || exitedProcess(ssh),
    20_000,
    `the ssh session for port ${port} up`,
  );
  expect(exitedProcess(ssh), ssh.output()).toBe(false);
  expect(await curlOnEdge(port)).toMatch(/^hello from /);
  return { record, fingerprint: sshFingerprint(key.publicKey), port, ssh };
}

/** curl on the edge host, as a client of the tunnel's loopback port. */
function curlOnEdge(port: number): Promise<string> {
  return hosts.edge.exec('curl', ['-sS', '--max-time', '5', `http://127.0.0.1:${port}/`]);
}

/** The ssh client ended, saying the edge closed it; its port on the edge refuses. */
async function expectEnded(s: Session, withinMs: number): Promise<void> {
  await eventually(
    () => exitedProcess(s.ssh),
    (gone) => gone,
    withinMs,
    `the ssh client for port ${s.port} ended`,
  );
  expect(s.ssh.output()).toMatch(/closed by remote host|Connection reset|Broken pipe/);
  await expect(curlOnEdge(s.port)).rejects.toThrow(/Connection refused|Failed to connect/);
}

async function expectAlive(edge: SshEdge, s: Session): Promise<void> {
  expect(exitedProcess(s.ssh), s.ssh.output()).toBe(false);
  expect(await curlOnEdge(s.port)).toMatch(/^hello from /);
  expect((await edge.sessions()).map((x) => x.fingerprint)).toContain(s.fingerprint);
}

async function children(pid: number): Promise<number[]> {
  return (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')).split(/\s+/).filter(Boolean).map(Number);
}

beforeAll(async () => {
  await run('bash', [join(repoRoot, 'infra/tunnel-users.sh')]);
  hosts = await makeTestHosts();
  nodeDir = await mkdtemp(join(tmpdir(), 'sy-ssh-cut-node-'));

  container = await docker.createContainer({ Image: HTTP_APP_IMAGE, Labels: { 'io.switchyard.test': 'tunnel-ssh-revoke' }, HostConfig: { NetworkMode: 'none' } });
  await container.start();
  await hosts.attachContainer((await container.inspect()).State.Pid);
  await eventually(
    () => hosts.node.exec('curl', ['-sS', '--max-time', '2', `http://${TEST_CONTAINER_LINK.container}:${HTTP_APP_PORT}/`]).catch((e: Error) => e.message),
    (out) => out.startsWith('hello from'),
    15_000,
    'the app answering on the node host',
  );

  const start = async (name: string, port: number, sessions: { intervalMs: number; maxSessionMs?: number }) => {
    // Under /run, not /tmp: sshd runs its key command only from a path no one but root can write.
    const dir = `/run/switchyard-test-ssh-cut-${name}-${hosts.id}`;
    dirs.push(dir);
    const edge = await startSshEdge({
      dir,
      listenAddress: TEST_LINK.edge,
      port,
      tunnelUser: TUNNEL_USER,
      commandUser: COMMAND_USER,
      keys: store,
      host: hosts.edge,
      clientAliveIntervalSec: 2,
      clientAliveCountMax: 3,
      sessions: { ...sessions, onCut: (cut) => cuts.push({ ...cut, edge: name }) },
    });
    edges.push(edge);
    return edge;
  };
  timed = await start('timed', TIMED.port, { intervalMs: TIMED.intervalMs });
  onDemand = await start('on-demand', ON_DEMAND.port, { intervalMs: 0, maxSessionMs: ON_DEMAND.maxSessionMs });
}, 120_000);

afterAll(async () => {
  for (const e of edges) await e.stop().catch(() => undefined);
  await hosts?.remove();
  await container?.remove({ force: true }).catch(() => undefined);
  for (const d of [...dirs, nodeDir]) if (d) await rm(d, { recursive: true, force: true });
});

describe('the edge ends SSH sessions by key and by age', () => {
  let bystander: Session;
  let bystanderSince: Date;

  it("knows each session's key and its own sshd process", async () => {
    bystander = await openSession(timed, 40010);
    const sessions = await timed.sessions();
    expect(sessions).toHaveLength(1);
    expect(sessions[0]).toMatchObject({ fingerprint: bystander.fingerprint, user: TUNNEL_USER, address: TEST_LINK.node });
    bystanderSince = sessions[0]!.since;
    // The fingerprint is ssh-keygen's, as sshd logged it.
    expect(timed.log()).toContain(`ED25519 ${bystander.fingerprint}`);
    expect(await children(timed.pid)).toContain(sessions[0]!.pid);
    expect(await onDemand.sessions()).toEqual([]);
  });

  it('a revoked key: its session is cut within the interval, with no call from anyone; another key’s session stays', async () => {
    const s = await openSession(timed, 40011);
    const pid = (await timed.sessions()).find((x) => x.fingerprint === s.fingerprint)!.pid;
    store.revoke(s.record.publicKey);
    await expectEnded(s, CUT_WITHIN_MS);
    expect(cuts.filter((c) => c.fingerprint === s.fingerprint)).toEqual([expect.objectContaining({ edge: 'timed', pid, reason: 'revoked', address: TEST_LINK.node })]);
    // Its process was a child of the edge's sshd, and is gone.
    await eventually(
      () => children(timed.pid),
      (c) => !c.includes(pid),
      5000,
      'the session process gone',
    );
    await expectAlive(timed, bystander);
  });

  it('an expired key: its session is cut once the validity ends, by the timer alone', async () => {
    const validMs = 8000;
    const s = await openSession(timed, 40012, { validUntil: new Date(Date.now() + validMs) });
    // The edge leaves it alone while the key is valid (a few passes of the timer here).
    expect((await timed.enforce()).filter((c) => c.fingerprint === s.fingerprint)).toEqual([]);
    expect(exitedProcess(s.ssh)).toBe(false);
    await expectEnded(s, validMs + CUT_WITHIN_MS);
    const cut = cuts.find((c) => c.fingerprint === s.fingerprint);
    expect(cut).toMatchObject({ edge: 'timed', reason: 'expired' });
    expect(cut!.at.getTime()).toBeGreaterThanOrEqual(s.record.validUntil.getTime());
    await expectAlive(timed, bystander);
  });

  it('on demand: enforce() right after a revocation cuts the session and returns the cut', async () => {
    const s = await openSession(onDemand, 40013);
    expect(await onDemand.enforce()).toEqual([]);
    store.revoke(s.record.publicKey);
    const done = await onDemand.enforce();
    expect(done).toEqual([expect.objectContaining({ fingerprint: s.fingerprint, reason: 'revoked' })]);
    await expectEnded(s, 5000);
    await expectAlive(timed, bystander);
  });

  it("a session older than the edge's age limit is cut, though its key is valid; the other sshd's sessions are not touched", async () => {
    const s = await openSession(onDemand, 40014);
    const since = (await onDemand.sessions()).find((x) => x.fingerprint === s.fingerprint)!.since;
    expect(await onDemand.enforce()).toEqual([]);
    // Bounded: the limit plus a margin, polled.
    const done = await eventually(
      () => onDemand.enforce(),
      (c) => c.length > 0,
      ON_DEMAND.maxSessionMs + 10_000,
      'a cut for age',
      { intervalMs: 500 },
    );
    expect(done).toEqual([expect.objectContaining({ fingerprint: s.fingerprint, reason: 'session too old' })]);
    expect(done[0]!.at.getTime() - since.getTime()).toBeGreaterThanOrEqual(ON_DEMAND.maxSessionMs);
    expect(store.keyStatus(s.fingerprint, new Date())).toBe('valid');
    await expectEnded(s, 5000);
    // The bystander on the timed edge is older than this limit too, and stays.
    expect(Date.now() - bystanderSince.getTime()).toBeGreaterThan(ON_DEMAND.maxSessionMs);
    await expectAlive(timed, bystander);
  });
});
