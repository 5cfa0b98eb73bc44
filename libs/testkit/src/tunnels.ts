import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import {
  bringUpLink,
  createKeyFile,
  type ForwarderEvent,
  type ForwarderOptions,
  type ForwarderState,
  generateClientKey,
  linkAddress,
  type PathKind,
  ReverseTunnel,
  type SshEdge,
  SshKeyStore,
  startSshEdge,
  type Target,
  uniqueInterfaceName,
  type WireGuardLink,
} from '@switchyard/tunnels';
import { eventually } from './async.js';
import { docker } from './system.js';
import { HTTP_APP_IMAGE, HTTP_APP_PORT } from './images.js';
import { makeTestHosts, TEST_CONTAINER_LINK, TEST_LINK, type TestHostProcess, type TestHosts } from './netns.js';
import { repoRoot } from './processes.js';

// One tunnel's worth of real parts, for the tests and the bench that need every path at once:
// an edge and a node's host (network namespaces), the node a real http-app container behind
// the node's host, and three ways from the edge to it:
//   wireguard  a wireguard-go link, the container's network routed over it (10.78.0.2:8080)
//   ssh        the edge's sshd and a reverse tunnel from the node's host (127.0.0.1:<port> on the edge)
//   direct     the node's host publishing the container's port on its link address, as Docker's
//              -p does (10.77.0.2:18080, a DNAT in the node's namespace): the reference
// and the edge forwarder, run as a process in the edge's namespace.
// `addService` puts more real servers in the node (an sshd, a Redis): containers sharing the
// app container's network namespace, so the node keeps one address, and each port gets paths
// of its own (its own reverse tunnel and key on the SSH path).

const run = promisify(execFile);
export const RIG_SSH_USER = 'switchyard-tunnel';
const KEYS_USER = 'switchyard-keys';
const WG_PORT = 51820;
const WG_RANGE = '10.99.0.0/24';
const SSHD_PORT = 2222;
const DIRECT_PORT = 18080;
/** Ports on the edge's loopback (SSH path) and the node's link address (direct) for `addService`, counting up. */
const SERVICE_SSH_PORTS = 40101;
const SERVICE_DIRECT_PORTS = 18101;
const CONTAINER_NETWORK = `${TEST_CONTAINER_LINK.host.split('.').slice(0, 3).join('.')}.0/${TEST_CONTAINER_LINK.prefix}`;
const BREAK_TABLE = 'sy_test_wg_break';

export interface TunnelRig {
  readonly hosts: TestHosts;
  /** Where each path reaches the container's HTTP port, as the edge dials it. */
  readonly targets: Readonly<Record<PathKind, Target>>;
  readonly wireguard: { readonly edge: WireGuardLink; readonly node: WireGuardLink };
  readonly ssh: { readonly edge: SshEdge; readonly keys: SshKeyStore; readonly tunnel: ReverseTunnel };
  /**
   * Starts another container in the node, in the app container's network namespace (the same
   * address, TEST_CONTAINER_LINK.container), and gives its `port` every path. Resolves once the
   * port accepts connections from the node's host and its reverse tunnel is up.
   */
  addService(spec: ServiceSpec): Promise<RigService>;
  /** Drops the WireGuard link's packets at the node's host (nftables in its namespace), or lets them through again. */
  breakWireGuard(broken: boolean): Promise<void>;
  /** The edge forwarder of libs/tunnels, as a process in the edge's namespace. */
  startForwarder(options: Omit<ForwarderOptions, 'onEvent'>): Promise<ForwarderProcess>;
  remove(): Promise<void>;
}

export interface ServiceSpec {
  readonly image: string;
  /** The port its server listens on inside the container. */
  readonly port: number;
  /** `NAME=value` pairs, as Docker takes them. */
  readonly env?: readonly string[];
}

export interface RigService {
  readonly container: Container;
  /** Where each path reaches the service's port, as the edge dials it. */
  readonly targets: Readonly<Record<PathKind, Target>>;
  readonly tunnel: ReverseTunnel;
}

type Container = Awaited<ReturnType<typeof docker.createContainer>>;

export interface ForwarderProcess {
  readonly port: number;
  /** Every event so far, with the time this process read it (ms since the epoch). */
  readonly events: ReadonlyArray<ForwarderEvent & { readAt: number }>;
  state(): Promise<ForwarderState>;
  setTarget(kind: PathKind, target: Target): void;
  stop(): Promise<void>;
}

export async function startTunnelRig(opts: { sshRemotePort?: number } = {}): Promise<TunnelRig> {
  await run('bash', [join(repoRoot, 'infra/tunnel-users.sh')]);
  const hosts = await makeTestHosts();
  const dir = await mkdtemp(join(tmpdir(), 'sy-tunnel-rig-'));
  // Under /run: sshd runs its key command only from a path no one but root can write.
  const edgeDir = `/run/switchyard-test-rig-${hosts.id}`;
  const cleanups: Array<() => Promise<unknown>> = [];
  const remove = async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    await hosts.remove();
    await rm(dir, { recursive: true, force: true });
    await rm(edgeDir, { recursive: true, force: true });
  };
  try {
    const container = await docker.createContainer({ Image: HTTP_APP_IMAGE, Labels: { 'io.switchyard.test': 'tunnel-rig' }, HostConfig: { NetworkMode: 'none' } });
    cleanups.push(() => container.remove({ force: true }));
    await container.start();
    await hosts.attachContainer((await container.inspect()).State.Pid);
    const app = { host: TEST_CONTAINER_LINK.container, port: HTTP_APP_PORT };
    await hosts.node.exec('sysctl', ['-w', 'net.ipv4.ip_forward=1']);
    await hosts.node.nft(`table ip sy_test_publish {
  chain prerouting { type nat hook prerouting priority dstnat; ip daddr ${TEST_LINK.node} tcp dport ${DIRECT_PORT} dnat to ${app.host}:${app.port}; }
}`);
    await eventually(
      () => hosts.node.exec('curl', ['-sS', '--max-time', '2', `http://${app.host}:${app.port}/`]).catch((e: Error) => e.message),
      (out) => out.startsWith('hello from'),
      15_000,
      'the app answering on the node host',
    );

    // WireGuard: the edge's peer for the node carries the container's network (see libs/tunnels wireguard/link.ts).
    const edgeKey = await createKeyFile(join(dir, 'wg-edge'), 'edge', hosts.edge);
    const nodeKey = await createKeyFile(join(dir, 'wg-node'), 'node', hosts.node);
    const [edgeWg, nodeWg] = [linkAddress(WG_RANGE, 1), linkAddress(WG_RANGE, 2)];
    const wgEdge = await bringUpLink({
      host: hosts.edge,
      config: { interfaceName: uniqueInterfaceName(), range: WG_RANGE, address: edgeWg, listenPort: WG_PORT, stateDir: join(dir, 'wg-edge') },
      key: edgeKey,
    });
    cleanups.push(() => wgEdge.down());
    const wgNode = await bringUpLink({
      host: hosts.node,
      config: { interfaceName: uniqueInterfaceName(), range: WG_RANGE, address: nodeWg, listenPort: WG_PORT, stateDir: join(dir, 'wg-node') },
      key: nodeKey,
    });
    cleanups.push(() => wgNode.down());
    await wgEdge.setPeer({ publicKey: nodeKey.publicKey, endpoint: `${TEST_LINK.node}:${WG_PORT}`, allowedIps: [`${nodeWg}/32`, CONTAINER_NETWORK] });
    await wgNode.setPeer({ publicKey: edgeKey.publicKey, endpoint: `${TEST_LINK.edge}:${WG_PORT}`, allowedIps: [`${edgeWg}/32`], persistentKeepaliveSec: 25 });

    // SSH: the edge's sshd asking this process's key store; a reverse tunnel from the node's host.
    const keys = new SshKeyStore(RIG_SSH_USER);
    const sshEdge = await startSshEdge({
      dir: edgeDir,
      listenAddress: TEST_LINK.edge,
      port: SSHD_PORT,
      tunnelUser: RIG_SSH_USER,
      commandUser: KEYS_USER,
      keys,
      host: hosts.edge,
      clientAliveIntervalSec: 2,
      clientAliveCountMax: 3,
    });
    cleanups.push(() => sshEdge.stop());
    const knownHosts = join(dir, 'edge.known_hosts');
    await writeFile(knownHosts, sshEdge.knownHostsLine(), { mode: 0o644 });
    // One key, one port on the edge and one session per node port: a key opens its own port only.
    const reverseTunnel = async (pathId: string, keyId: string, remotePort: number, target: Target) => {
      const clientKey = await generateClientKey(join(dir, 'ssh-node'), keyId, hosts.node);
      keys.put({
        publicKey: clientKey.publicKey,
        pathId,
        permitListenPort: remotePort,
        validFrom: new Date(Date.now() - 60_000),
        validUntil: new Date(Date.now() + 3600_000),
      });
      const t = new ReverseTunnel({
        host: hosts.node,
        edgeHost: TEST_LINK.edge,
        edgePort: SSHD_PORT,
        user: RIG_SSH_USER,
        identityPath: clientKey.privateKeyPath,
        knownHostsPath: knownHosts,
        forward: { remotePort, targetHost: target.host, targetPort: target.port },
        serverAliveIntervalSec: 2,
        serverAliveCountMax: 3,
        connectTimeoutSec: 5,
        backoff: { initialMs: 200, factor: 2, maxMs: 2000, jitter: 0.5 },
      });
      cleanups.push(() => t.stop());
      t.start();
      await t.waitFor('up', 30_000);
      return t;
    };
    const remotePort = opts.sshRemotePort ?? 40001;
    const tunnel = await reverseTunnel('rig.ssh', 'rig.ssh.1', remotePort, app);

    const forwarderScript = join(repoRoot, 'libs/testkit/src/tunnel-forwarder-process.ts');
    let services = 0;
    return {
      hosts,
      targets: { wireguard: app, ssh: { host: '127.0.0.1', port: remotePort }, direct: { host: TEST_LINK.node, port: DIRECT_PORT } },
      wireguard: { edge: wgEdge, node: wgNode },
      ssh: { edge: sshEdge, keys, tunnel },
      async addService(spec) {
        const n = services++;
        const service = await docker.createContainer({
          Image: spec.image,
          Env: spec.env ? [...spec.env] : undefined,
          Labels: { 'io.switchyard.test': 'tunnel-rig' },
          HostConfig: { NetworkMode: `container:${container.id}` },
        });
        cleanups.push(() => service.remove({ force: true }));
        await service.start();
        const target = { host: app.host, port: spec.port };
        // A bare TCP connect from the node's host: the server is up, whatever its protocol.
        await eventually(
          () =>
            hosts.node
              .exec('timeout', ['2', 'bash', '-c', `exec 3<>/dev/tcp/${target.host}/${target.port}`])
              .then(() => true)
              .catch(() => false),
          (ok) => ok,
          15_000,
          `${spec.image} accepting connections on ${target.host}:${target.port}`,
        );
        const directPort = SERVICE_DIRECT_PORTS + n;
        await hosts.node.nft(`table ip sy_test_publish_${n} {
  chain prerouting { type nat hook prerouting priority dstnat; ip daddr ${TEST_LINK.node} tcp dport ${directPort} dnat to ${target.host}:${target.port}; }
}`);
        const sshPort = SERVICE_SSH_PORTS + n;
        const t = await reverseTunnel(`rig.ssh.service${n}`, `rig.ssh.service${n}`, sshPort, target);
        return {
          container: service,
          targets: { wireguard: target, ssh: { host: '127.0.0.1', port: sshPort }, direct: { host: TEST_LINK.node, port: directPort } },
          tunnel: t,
        };
      },
      async breakWireGuard(broken) {
        if (broken) await hosts.node.nft(`table inet ${BREAK_TABLE} {\n  chain input { type filter hook input priority 0; udp dport ${WG_PORT} drop; }\n}`);
        else await hosts.node.exec('nft', ['delete', 'table', 'inet', BREAK_TABLE]);
      },
      async startForwarder(options) {
        const p = hosts.edge.spawn(process.execPath, ['--import', 'tsx', forwarderScript, JSON.stringify(options)], { ...process.env });
        cleanups.push(() => p.stop());
        return forwarderProcess(p);
      },
      remove,
    };
  } catch (err) {
    await remove();
    throw err;
  }
}

async function forwarderProcess(p: TestHostProcess): Promise<ForwarderProcess> {
  const events: Array<ForwarderEvent & { readAt: number }> = [];
  const states: Array<(s: ForwarderState) => void> = [];
  let listening: ((port: number) => void) | undefined;
  const port = new Promise<number>((resolve) => (listening = resolve));
  createInterface({ input: p.child.stdout! }).on('line', (line) => {
    if (!line.startsWith('{')) return;
    const o = JSON.parse(line) as { type: string; port?: number };
    if (o.type === 'listening') listening?.(o.port!);
    else if (o.type === 'state') states.shift()?.(o as unknown as ForwarderState);
    else events.push({ ...(o as ForwarderEvent), readAt: Date.now() });
  });
  const send = (o: object) => p.child.stdin!.write(`${JSON.stringify(o)}\n`);
  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`the forwarder did not listen within 15 s:\n${p.output()}`)), 15_000).unref());
  return {
    port: await Promise.race([port, timeout]),
    events,
    state: () =>
      new Promise<ForwarderState>((resolve) => {
        states.push(resolve);
        send({ cmd: 'state' });
      }),
    setTarget: (kind, target) => send({ cmd: 'setTarget', kind, target }),
    stop: () => p.stop(),
  };
}

export { clientLines, curl, HOLDING_CLIENT, type ClientLine } from './tunnel-hosts.js';
