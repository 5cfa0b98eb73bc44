import { describe, expect, it } from 'vitest';
import { payloadIssues, schemaIssues, TunnelSpec, type TunnelSpec as Spec } from '@switchyard/contracts';
import { aPublishedPort } from '@switchyard/testkit/fixtures';
import { commandFor } from '../src/orders/commands.js';
import { OrderRequest } from '../src/orders/schemas.js';
import { IPV4_DOTTED_QUAD, tunnelSpecIssues } from '../src/tunnels.js';

const tenantId = '0b9f4f2e-6a2d-4c1e-9a51-3f5e8f0c2d11';
const orderId = '5c1d0c53-0d2f-4f0e-8f4a-2b7e1c9a4e77';
const nodeId = 'a1b2c3d4-0000-4000-8000-000000000001';
const spec = (over: Partial<Spec> = {}): Spec => ({ name: 'web', nodeId, port: 8000, paths: [{ kind: 'wireguard' }, { kind: 'ssh' }], ...over });
const published = { of: `node ${nodeId}`, ports: [aPublishedPort('control', 32001, 8000), aPublishedPort('metrics', 32002, 9100)].map((p) => p.containerPort) };

describe('tunnelSpecIssues', () => {
  it('passes a spec with each kind once and an address on direct only', () => {
    expect(tunnelSpecIssues(spec({ paths: [{ kind: 'wireguard' }, { kind: 'ssh' }, { kind: 'direct', address: '192.168.1.20' }] }), published)).toEqual([]);
    expect(tunnelSpecIssues(spec({ paths: [{ kind: 'direct', address: '100.64.0.7' }] }))).toEqual([]);
  });

  it('refuses keys that would expire before they are rotated', () => {
    expect(tunnelSpecIssues(spec({ keyLifetimeDays: 7, rotateEveryHours: 168 }))).toEqual([
      { path: 'keyLifetimeDays', message: '7 days would expire keys before their rotation every 168 hours' },
    ]);
    // The default rotation (weekly) against a short lifetime, and a short rotation against it.
    expect(tunnelSpecIssues(spec({ keyLifetimeDays: 1 })).map((i) => i.path)).toEqual(['keyLifetimeDays']);
    expect(tunnelSpecIssues(spec({ keyLifetimeDays: 1, rotateEveryHours: 12 }))).toEqual([]);
  });

  it('names the later of two paths of one kind', () => {
    expect(tunnelSpecIssues(spec({ paths: [{ kind: 'ssh' }, { kind: 'wireguard' }, { kind: 'ssh' }] }))).toEqual([
      { path: 'paths.2.kind', message: 'ssh is already paths.0: each kind at most once' },
    ]);
    expect(
      tunnelSpecIssues(
        spec({
          paths: [
            { kind: 'direct', address: '10.0.0.1' },
            { kind: 'direct', address: '10.0.0.2' },
          ],
        }),
      ).map((i) => i.path),
    ).toEqual(['paths.1.kind']);
  });

  it('asks a direct path for an IPv4 address and refuses one on the paths tunnel-manager builds', () => {
    expect(tunnelSpecIssues(spec({ paths: [{ kind: 'wireguard' }, { kind: 'direct' }] }))).toEqual([
      { path: 'paths.1.address', message: "required on a direct path: the node's host on the operator's network" },
    ]);
    expect(tunnelSpecIssues(spec({ paths: [{ kind: 'direct', address: 'node.lan' }] }))).toEqual([
      { path: 'paths.0.address', message: '"node.lan" is not an IPv4 address (a.b.c.d)' },
    ]);
    expect(
      tunnelSpecIssues(
        spec({
          paths: [
            { kind: 'wireguard', address: '10.0.0.1' },
            { kind: 'ssh', address: '10.0.0.1' },
          ],
        }),
      ),
    ).toEqual([
      { path: 'paths.0.address', message: 'not allowed on the wireguard path: tunnel-manager makes its own' },
      { path: 'paths.1.address', message: 'not allowed on the ssh path: tunnel-manager makes its own' },
    ]);
  });

  it('takes a node or an app pool, exactly one, and no direct path to a pool', () => {
    const poolId = 'a1b2c3d4-0000-4000-8000-0000000000aa';
    expect(tunnelSpecIssues(spec({ nodeId: undefined, poolId }))).toEqual([]);
    expect(tunnelSpecIssues(spec({ poolId }))).toEqual([{ path: 'poolId', message: 'a tunnel names a node or a pool, not both' }]);
    expect(tunnelSpecIssues(spec({ nodeId: undefined }))).toEqual([{ path: 'nodeId', message: 'required, or poolId: the node (or app pool) whose port the tunnel exposes' }]);
    expect(tunnelSpecIssues(spec({ nodeId: undefined, poolId, paths: [{ kind: 'ssh' }, { kind: 'direct', address: '10.0.0.1' }] }))).toEqual([
      { path: 'paths.1.kind', message: "a direct path reaches one node's host; a pool's tunnel takes wireguard or ssh" },
    ]);
    expect(tunnelSpecIssues(spec({ nodeId: undefined, poolId, port: 9 }), { of: `pool ${poolId}`, ports: [8000] })).toEqual([
      { path: 'port', message: `9 is not a published port of pool ${poolId}: it publishes 8000` },
    ]);
  });

  it('takes dotted quads only', () => {
    for (const good of ['0.0.0.0', '10.77.0.2', '192.168.1.20', '255.255.255.255', '100.64.0.7']) expect(IPV4_DOTTED_QUAD.test(good), good).toBe(true);
    for (const bad of ['256.1.1.1', '10.0.0', '10.0.0.1.2', '010.0.0.1', '10.0.0.1 ', ' 10.0.0.1', '::1', 'fe80::1', '10.0.0.1/24', '1e1.0.0.1', 'a.b.c.d', ''])
      expect(IPV4_DOTTED_QUAD.test(bad), bad).toBe(false);
  });

  it('checks the port against the container ports the node publishes, and lists them', () => {
    expect(tunnelSpecIssues(spec({ port: 9100 }), published)).toEqual([]);
    // The host port is the node host's business: a tunnel names the container's.
    expect(tunnelSpecIssues(spec({ port: 32001 }), published)).toEqual([{ path: 'port', message: `32001 is not a published port of node ${nodeId}: it publishes 8000, 9100` }]);
    expect(tunnelSpecIssues(spec(), { of: `node ${nodeId}`, ports: [] })).toEqual([
      { path: 'port', message: `8000 is not a published port of node ${nodeId}: it publishes none now` },
    ]);
    // Without the node's ports (not asked yet), only the spec itself is checked.
    expect(tunnelSpecIssues(spec({ port: 1 }))).toEqual([]);
  });

  it('reports every issue at once', () => {
    const issues = tunnelSpecIssues(spec({ port: 22, paths: [{ kind: 'direct' }, { kind: 'direct', address: 'x' }, { kind: 'ssh', address: '10.0.0.1' }] }), published);
    expect(issues.map((i) => i.path)).toEqual(['paths.0.address', 'paths.1.kind', 'paths.1.address', 'paths.2.address', 'port']);
  });

  it('leaves to the schema what the schema says: empty paths, an unknown kind, an unknown field', () => {
    expect(schemaIssues(TunnelSpec, spec({ paths: [] })).map((i) => i.path)).toEqual(['paths']);
    expect(schemaIssues(TunnelSpec, { ...spec(), paths: [{ kind: 'tailscale' }] }).map((i) => i.path)).toContain('paths.0.kind');
    expect(schemaIssues(TunnelSpec, { ...spec(), paths: [{ kind: 'ssh', via: 'x' }] })).toEqual([{ path: 'paths.0.via', message: 'unknown field' }]);
  });
});

describe('the orders of the tunnel endpoints', () => {
  it('open with a tunnel id chosen here, returned as the result, and a command that passes the contract', () => {
    const { command, result } = commandFor(orderId, tenantId, { type: 'tunnel.open', spec: spec() });
    expect(result).toEqual({ tunnelId: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    expect(command).toEqual({ subject: 'tunnel.cmd.open', payload: { orderId, tenantId, tunnelId: result['tunnelId'], spec: spec() } });
    expect(payloadIssues(command.subject, command.payload)).toEqual([]);
    expect(commandFor(orderId, tenantId, { type: 'tunnel.open', spec: spec() }).result['tunnelId']).not.toBe(result['tunnelId']);
  });

  it('close and rotate the tunnel named', () => {
    const tunnelId = 'f00dfeed-0000-4000-8000-000000000001';
    for (const [type, subject] of [
      ['tunnel.close', 'tunnel.cmd.close'],
      ['tunnel.rotate', 'tunnel.cmd.rotate'],
    ] as const) {
      const { command, result } = commandFor(orderId, tenantId, { type, tunnelId });
      expect(command).toEqual({ subject, payload: { orderId, tenantId, tunnelId } });
      expect(payloadIssues(command.subject, command.payload)).toEqual([]);
      expect(result).toEqual({ tunnelId });
    }
  });

  it('cannot be placed through POST /v1/orders', () => {
    expect(new Set(schemaIssues(OrderRequest, { type: 'tunnel.open' }).map((i) => i.path))).toEqual(new Set(['type']));
  });
});
