import { describe, expect, it } from 'vitest';
import { aNodeView, aPoolView, aPublishedPort } from '@switchyard/testkit/fixtures';
import {
  directAddressList,
  forwarderPaths,
  settingsProblems,
  specProblems,
  keyLifetimeMs,
  lowestFreePort,
  nextRotation,
  poolRoute,
  publishedPort,
  WIREGUARD_SINGLE_HOST,
} from '../src/plan.js';

const NODE = '00000000-0000-4000-8000-0000000000b1';
const spec = (paths: Array<{ kind: 'wireguard' | 'ssh' | 'direct'; address?: string }>, extra = {}) => ({ name: 'web', nodeId: NODE, port: 8000, paths, ...extra });

describe('tunnel-manager plan', () => {
  it('takes the lowest free port of the range, and none when all are taken', () => {
    expect(lowestFreePort(42000, 42003, new Set([42000, 42002]))).toBe(42001);
    expect(lowestFreePort(42000, 42001, new Set([42000, 42001]))).toBeUndefined();
  });

  it("finds the node's host port by container port, and says what it publishes otherwise", () => {
    const ports = [{ name: 'web', containerPort: 8000, hostIp: '127.0.0.1', hostPort: 32768 }];
    expect(publishedPort(ports, 8000)).toEqual(ports[0]);
    expect(publishedPort(ports, 9000)).toBe('the node publishes 8000, not 9000');
    expect(publishedPort([], 9000)).toBe('the node publishes no port (it may be stopped); not 9000');
  });

  it('gives the forwarder ssh at its forward port and direct at its address, in order, and leaves wireguard out with the reason', () => {
    const plan = forwarderPaths(spec([{ kind: 'wireguard' }, { kind: 'ssh' }, { kind: 'direct', address: '10.1.2.3' }]), 32768, 43001, new Set(['10.1.2.3']));
    expect(plan.paths).toEqual([
      { kind: 'ssh', target: { host: '127.0.0.1', port: 43001 } },
      { kind: 'direct', target: { host: '10.1.2.3', port: 32768 } },
    ]);
    expect(plan.unavailable).toEqual([{ kind: 'wireguard', reason: WIREGUARD_SINGLE_HOST }]);
    expect(forwarderPaths(spec([{ kind: 'ssh' }]), 32768, undefined, new Set())).toEqual({ paths: [], unavailable: [{ kind: 'ssh', reason: 'no SSH session key yet' }] });
  });

  it('keeps direct paths to the node hosts the operator listed, and names the field of any other', () => {
    const allowed = new Set(['127.0.0.1']);
    const s = spec([{ kind: 'ssh' }, { kind: 'direct', address: '10.0.0.9' }]);
    expect(specProblems(s, allowed)).toEqual(['paths.1.address: 10.0.0.9 is not the address of a node host (TUNNEL_DIRECT_ADDRESSES)']);
    expect(specProblems(spec([{ kind: 'direct', address: '127.0.0.1' }]), allowed)).toEqual([]);
    // Listed once and later dropped from the list: the path is down, not dialled.
    expect(forwarderPaths(s, 32768, 43001, allowed).unavailable).toEqual([{ kind: 'direct', reason: '10.0.0.9 is not the address of a node host (TUNNEL_DIRECT_ADDRESSES)' }]);
  });

  it('refuses port settings that are empty or overlap, and addresses that are not IPv4, naming the variable', () => {
    const ok = {
      TUNNEL_ROLE: 'single' as const,
      TUNNEL_EDGE_HOST: '127.0.0.1',
      TUNNEL_SSH_HOST: '127.0.0.1',
      TUNNEL_PORT_MIN: 42000,
      TUNNEL_PORT_MAX: 42999,
      TUNNEL_SSH_PORT: 41999,
      TUNNEL_SSH_FORWARD_MIN: 43000,
      TUNNEL_SSH_FORWARD_MAX: 43999,
      TUNNEL_DIRECT_ADDRESSES: '127.0.0.1, 10.0.0.2',
    };
    expect(settingsProblems(ok)).toEqual([]);
    expect(settingsProblems({ ...ok, TUNNEL_SSH_PORT: 42222 })).toEqual(['TUNNEL_SSH_PORT: 42222 is inside TUNNEL_PORT_MIN..MAX']);
    expect(settingsProblems({ ...ok, TUNNEL_PORT_MIN: 43000 })).toEqual(['TUNNEL_PORT_MIN: 43000 is above TUNNEL_PORT_MAX (42999)']);
    expect(settingsProblems({ ...ok, TUNNEL_SSH_FORWARD_MIN: 42500 })).toEqual(['TUNNEL_SSH_FORWARD_MIN: the forward ports overlap TUNNEL_PORT_MIN..MAX']);
    expect(settingsProblems({ ...ok, TUNNEL_DIRECT_ADDRESSES: 'node-1.lan' })).toEqual(['TUNNEL_DIRECT_ADDRESSES: "node-1.lan" is not an IPv4 address']);
    expect(directAddressList(' 10.0.0.1 ,,10.0.0.2 ')).toEqual(['10.0.0.1', '10.0.0.2']);
  });

  it('refuses an edge or agent without its host id, and an edge whose sshd or WireGuard node hosts cannot reach', () => {
    const edge = {
      TUNNEL_ROLE: 'edge' as const,
      TUNNEL_HOST_ID: 'docker-1',
      TUNNEL_EDGE_HOST: '203.0.113.7',
      TUNNEL_SSH_HOST: '203.0.113.7',
      TUNNEL_PORT_MIN: 42000,
      TUNNEL_PORT_MAX: 42999,
      TUNNEL_SSH_PORT: 41999,
      TUNNEL_SSH_FORWARD_MIN: 43000,
      TUNNEL_SSH_FORWARD_MAX: 43999,
      TUNNEL_DIRECT_ADDRESSES: '127.0.0.1',
    };
    expect(settingsProblems(edge)).toEqual([]);
    expect(settingsProblems({ ...edge, TUNNEL_ROLE: 'node', TUNNEL_HOST_ID: undefined })).toEqual([
      'TUNNEL_HOST_ID: required with TUNNEL_ROLE=node: the node host\'s id, lower-case letters, digits and "-"',
    ]);
    expect(settingsProblems({ ...edge, TUNNEL_SSH_HOST: '127.0.0.1', TUNNEL_EDGE_HOST: '0.0.0.0' })).toEqual([
      "TUNNEL_SSH_HOST: node hosts cannot reach the edge's sshd at 127.0.0.1; set an address they reach (or TUNNEL_SSH_PUBLIC_HOST)",
      'TUNNEL_WG_ENDPOINT: required when TUNNEL_EDGE_HOST (0.0.0.0) is not an address node hosts reach',
    ]);
    expect(
      settingsProblems({ ...edge, TUNNEL_SSH_HOST: '0.0.0.0', TUNNEL_SSH_PUBLIC_HOST: 'edge.example', TUNNEL_EDGE_HOST: '0.0.0.0', TUNNEL_WG_ENDPOINT: 'edge.example:51820' }),
    ).toEqual([]);
  });

  it("routes a pool's tunnel to its nodes that publish the port, in a stable order, and refuses an exit pool or a port it does not publish", () => {
    const pool = aPoolView({ kind: 'app', ports: [{ name: 'web', containerPort: 8080 }] });
    const node = (hostPort: number, status: 'running' | 'removed' = 'running') => aNodeView({ pool, status, ports: [aPublishedPort('web', hostPort, 8080)] });
    const nodes = [node(32003), node(32001), node(32002, 'removed'), aNodeView({ ports: [aPublishedPort('web', 32009, 8080)] })];
    // Another pool's node and a removed one (its port may be someone else's now) are not targets.
    expect(poolRoute(pool, nodes, 8080)).toEqual({
      targets: [
        { host: '127.0.0.1', port: 32001 },
        { host: '127.0.0.1', port: 32003 },
      ],
      hostPort: undefined,
      balanced: true,
    });
    // No node yet: the port is the spec's, and the tunnel sends nowhere until one comes.
    expect(poolRoute(pool, [], 8080)).toEqual({ targets: [], hostPort: undefined, balanced: true });
    expect(poolRoute(pool, nodes, 9000)).toBe('the pool publishes 8080, not 9000');
    const exit = aPoolView({ kind: 'exit' });
    expect(poolRoute(exit, [], 8080)).toBe(`pool ${exit.poolId} is an exit pool; a tunnel takes an app pool's port`);
  });

  it('rotates weekly and lets a key live 90 days unless the spec says otherwise', () => {
    const at = new Date('2026-12-07T00:00:00Z');
    expect(nextRotation(at, spec([{ kind: 'ssh' }])).toISOString()).toBe('2026-12-14T00:00:00.000Z');
    expect(nextRotation(at, spec([{ kind: 'ssh' }], { rotateEveryHours: 1 })).toISOString()).toBe('2026-12-07T01:00:00.000Z');
    expect(keyLifetimeMs(spec([{ kind: 'ssh' }]))).toBe(90 * 86_400_000);
    expect(keyLifetimeMs(spec([{ kind: 'ssh' }], { keyLifetimeDays: 1 }))).toBe(86_400_000);
  });
});
