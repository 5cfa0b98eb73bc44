import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { docker, eventually, HTTP_APP_IMAGE, HTTP_APP_PORT, makeTestHosts, rejectionOf, TEST_CONTAINER_LINK, TEST_LINK, type TestHosts } from '@switchyard/testkit';
import { bringUpLink, createKeyFile, linkAddress, rotateNodeKey, uniqueInterfaceName, type WireGuardLink, type WireGuardPeer } from '@switchyard/tunnels';
import { clientLines, curl, HOLDING_CLIENT } from '@switchyard/testkit/tunnels';

// A WireGuard path between an edge and a node's host, each a network namespace of the test's
// own, with real wireguard-go, wg and ip, and the node a real container attached to the node's
// host. The edge reaches the container's HTTP port only over the link; the node's key rotates
// under an open connection; a removed key is refused.

const RANGE = '10.99.0.0/24';
const LISTEN_PORT = 51820;
/** The network the container sits on behind the node's host (a /24 in the testkit). */
const CONTAINER_NETWORK = `${TEST_CONTAINER_LINK.host.split('.').slice(0, 3).join('.')}.0/${TEST_CONTAINER_LINK.prefix}`;
const APP_URL = `http://${TEST_CONTAINER_LINK.container}:${HTTP_APP_PORT}/`;

describe('a WireGuard path from the edge to a node’s container', () => {
  let hosts: TestHosts;
  let dir: string;
  let container: Docker.Container | undefined;
  let edge: WireGuardLink | undefined;
  let node: WireGuardLink | undefined;
  /** The edge's peer entry for the node, as it stands. */
  let edgePeer: WireGuardPeer;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sy-wg-test-'));
    hosts = await makeTestHosts();
    container = await docker.createContainer({ Image: HTTP_APP_IMAGE, Labels: { 'io.switchyard.test': 'tunnel-wireguard' }, HostConfig: { NetworkMode: 'none' } });
    await container.start();
    await hosts.attachContainer((await container.inspect()).State.Pid);
    // The node's host routes between the link and its container network (see link.ts).
    await hosts.node.exec('sysctl', ['-w', 'net.ipv4.ip_forward=1']);
  });

  afterAll(async () => {
    await edge?.down().catch(() => undefined);
    await node?.down().catch(() => undefined);
    await container?.remove({ force: true }).catch(() => undefined);
    await hosts?.remove();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('the edge reaches the container only once the link is up, and both ends report the handshake and transfer', async () => {
    // The node's host itself reaches its container; the edge has no way there yet.
    expect(
      await eventually(
        () => curl(hosts.node, APP_URL).catch((e: Error) => e.message),
        (r) => r.startsWith('hello from '),
        15_000,
        'the app answers its host',
      ),
    ).toMatch(/^hello from /);
    expect(String(await rejectionOf(curl(hosts.edge, APP_URL)))).toContain('curl: (7)');

    const started = Date.now();
    const edgeKey = await createKeyFile(join(dir, 'edge'), 'edge', hosts.edge);
    const nodeKey = await createKeyFile(join(dir, 'node'), 'node', hosts.node);
    const [edgeAddress, nodeAddress] = [linkAddress(RANGE, 1), linkAddress(RANGE, 2)];
    edge = await bringUpLink({
      host: hosts.edge,
      config: { interfaceName: uniqueInterfaceName(), range: RANGE, address: edgeAddress, listenPort: LISTEN_PORT, stateDir: join(dir, 'edge') },
      key: edgeKey,
    });
    node = await bringUpLink({
      host: hosts.node,
      config: { interfaceName: uniqueInterfaceName(), range: RANGE, address: nodeAddress, listenPort: LISTEN_PORT, stateDir: join(dir, 'node') },
      key: nodeKey,
    });
    edgePeer = { publicKey: nodeKey.publicKey, endpoint: `${TEST_LINK.node}:${LISTEN_PORT}`, allowedIps: [`${nodeAddress}/32`, CONTAINER_NETWORK] };
    await edge.setPeer(edgePeer);
    await node.setPeer({ publicKey: edgeKey.publicKey, endpoint: `${TEST_LINK.edge}:${LISTEN_PORT}`, allowedIps: [`${edgeAddress}/32`], persistentKeepaliveSec: 25 });

    expect(await curl(hosts.edge, APP_URL)).toMatch(/^hello from [0-9a-f]{12}\n$/);

    for (const [end, peerKey] of [
      [edge, nodeKey.publicKey],
      [node, edgeKey.publicKey],
    ] as const) {
      const state = await end.show();
      expect(state.publicKey).toBe(end.key.publicKey);
      expect(state.listenPort).toBe(LISTEN_PORT);
      const peer = state.peers.find((p) => p.publicKey === peerKey);
      expect(peer?.latestHandshakeAt?.getTime()).toBeGreaterThanOrEqual(Math.floor(started / 1000) * 1000);
      expect(peer?.latestHandshakeAt?.getTime()).toBeLessThanOrEqual(Date.now());
      expect(peer?.rxBytes).toBeGreaterThan(0);
      expect(peer?.txBytes).toBeGreaterThan(0);
    }
  });

  it('a connection held open across a rotation of the node’s key keeps working, on the new key', async () => {
    const script = join(dir, 'holding-client.mjs');
    await writeFile(script, HOLDING_CLIENT);
    const client = hosts.edge.spawn('node', [script, TEST_CONTAINER_LINK.container, String(HTTP_APP_PORT)]);
    try {
      const answered = (count: number) =>
        eventually(
          () => clientLines(client.output()),
          (ls) => ls.some((l) => l.error) || ls.length >= count,
          20_000,
          `${count} answers`,
        );
      const before = await answered(10);
      const oldKey = node!.key;

      const rotated = await rotateNodeKey({ node: node!, edge: edge!, edgePeer });
      edgePeer = rotated.edgePeer;
      const after = await answered(before.length + 30);

      const lines = clientLines(client.output());
      expect(lines.filter((l) => l.error)).toEqual([]);
      expect(after.length).toBeGreaterThanOrEqual(before.length + 30);
      // One connection throughout: the agent would have opened another if it had broken.
      expect(new Set(lines.map((l) => l.localPort)).size).toBe(1);
      expect(new Set(lines.map((l) => `${l.status} ${l.body?.slice(0, 11)}`))).toEqual(new Set(['200 hello from ']));
      expect(client.child.exitCode).toBeNull();

      expect(rotated.handshakeSeen).toBe(true);
      expect(rotated.key.publicKey).not.toBe(oldKey.publicKey);
      expect((await node!.show()).publicKey).toBe(rotated.key.publicKey);
      // The edge knows the new key alone, with the node's routes; the old key file is gone.
      expect((await edge!.show()).peers.map((p) => ({ key: p.publicKey, allowed: p.allowedIps }))).toEqual([{ key: rotated.key.publicKey, allowed: edgePeer.allowedIps }]);
      expect(existsSync(oldKey.privateKeyFile)).toBe(false);
      expect(existsSync(rotated.key.privateKeyFile)).toBe(true);
    } finally {
      await client.stop();
    }
  });

  it('an idle link rotates as well: the node handshakes with its new key at once, and the next connection goes over it', async () => {
    const rotated = await rotateNodeKey({ node: node!, edge: edge!, edgePeer, handshakeTimeoutMs: 3_000 });
    edgePeer = rotated.edgePeer;
    // Nothing was being sent: the handshake came from the rotation itself, not from traffic or the 25 s keepalive.
    expect(rotated.handshakeSeen).toBe(true);
    expect(await curl(hosts.edge, APP_URL)).toMatch(/^hello from /);
    expect((await edge!.peer(rotated.key.publicKey))?.allowedIps).toEqual(edgePeer.allowedIps);
  });

  it('a key the edge removed (expired) is refused: the node’s packets no longer arrive, and new connections fail', async () => {
    // Over the link the edge's kernel answers a closed port with a reset: the path delivers.
    const closedPort = `http://${edge!.address}:9/`;
    expect(String(await rejectionOf(curl(hosts.node, closedPort)))).toContain('curl: (7) Failed to connect');

    await edge!.removePeer(edgePeer.publicKey);

    // The node still holds its key and session, but the edge drops what they carry: no reset comes back.
    expect(String(await rejectionOf(curl(hosts.node, closedPort, 3)))).toContain('curl: (28)');
    expect(String(await rejectionOf(curl(hosts.edge, APP_URL)))).toContain('curl: (7)');
    expect((await edge!.show()).peers).toEqual([]);
  });

  it('taking the links down ends wireguard-go and removes its interface and control socket', async () => {
    for (const [end, host] of [
      [edge!, hosts.edge],
      [node!, hosts.node],
    ] as const) {
      await end.down();
      expect(String(await rejectionOf(host.exec('ip', ['link', 'show', 'dev', end.name])))).toContain('does not exist');
      expect(existsSync(`/var/run/wireguard/${end.name}.sock`)).toBe(false);
      if (end.pid !== undefined) expect(() => process.kill(end.pid!, 0)).toThrow('ESRCH');
    }
  });
});
