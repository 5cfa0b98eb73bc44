import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { freePort } from './net.js';
import { startSpeedTestTarget, type SpeedTestTarget } from './speedtest-target.js';
import { startTestSystem, type HttpResult, type TestSystem } from './system.js';

export const COMPAT_USER = 'controller';
export const COMPAT_PASSWORD = 'compat-password-for-tests';
export const basicAuth = (user = COMPAT_USER, password = COMPAT_PASSWORD) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

/** The VPN server catalog the gateway of an API test system reads. */
export const TEST_SERVERS = { jp: ['jp1.vpn.example', 'jp2.vpn.example'], de: ['de1.vpn.example'] };

export interface ApiSystem {
  readonly sys: TestSystem;
  readonly target: SpeedTestTarget;
  readonly proxyPort: number;
  /** A call to /api with the configured Basic credentials (or the given headers instead). */
  api(method: string, path: string, opts?: { body?: unknown; rawBody?: string; headers?: Record<string, string> }): Promise<HttpResult<any>>;
  close(): Promise<void>;
}

/**
 * Gateway (with Basic credentials and a server catalog file), exit-node-manager (nodes on the
 * host network so they reach the loopback target), and, unless left out, health-monitor and
 * load-balancer: the real processes.
 */
export async function startApiSystem(opts: { withHealthAndLb?: boolean } = {}): Promise<ApiSystem> {
  const target = await startSpeedTestTarget();
  const dir = await mkdtemp(join(tmpdir(), 'sy-api-'));
  const serversFile = join(dir, 'servers.json');
  await writeFile(serversFile, JSON.stringify(TEST_SERVERS));
  const proxyPort = await freePort();
  const sys = await startTestSystem();
  try {
    await sys.start('api-gateway', { COMPAT_API_USERNAME: COMPAT_USER, COMPAT_API_PASSWORD: COMPAT_PASSWORD, VPN_SERVERS_FILE: serversFile, SERVICE_REQUEST_TIMEOUT_MS: '2000' });
    await sys.start('exit-node-manager', { EXIT_NODE_NETWORK: 'host' });
    if (opts.withHealthAndLb ?? true) {
      await sys.start('health-monitor', { HEALTH_PROXY_TARGET: `${target.url}/204`, SPEEDTEST_URL: target.url, SPEEDTEST_BYTES: '200000' });
      await sys.start('load-balancer', { LB_LISTEN_HOST: '127.0.0.1', LB_PROXY_PORT: String(proxyPort), LB_WORKERS: '1' });
    }
  } catch (err) {
    await sys.close();
    await target.close();
    throw err;
  }
  return {
    sys,
    target,
    proxyPort,
    api: (method, path, o = {}) =>
      sys.http(method, `/api${path}`, {
        key: null,
        headers: { authorization: basicAuth(), ...(o.headers ?? {}) },
        ...(o.body !== undefined ? { body: o.body } : {}),
        ...(o.rawBody !== undefined ? { rawBody: o.rawBody } : {}),
      }),
    async close() {
      await sys.close();
      await target.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const nullOr = (pattern: RegExp | 'string') => (v: unknown) => v === null || (pattern === 'string' ? typeof v === 'string' : typeof v === 'string' && pattern.test(v));

/** The VPN Exit Controller's node shape: exactly these keys, with these types. */
export function expectCompatNode(n: any): void {
  expect(Object.keys(n).sort()).toEqual(['country', 'health_status', 'id', 'metrics', 'started_at', 'status', 'tailscale_hostname', 'tailscale_ip', 'vpn_server'].sort());
  expect(n.id).toMatch(UUID);
  expect(n.country).toMatch(/^[a-z]{2}$/);
  expect(['running', 'stopped', 'error', 'starting', 'stopping']).toContain(n.status);
  expect(['healthy', 'unhealthy', 'unknown']).toContain(n.health_status);
  for (const key of ['vpn_server', 'tailscale_hostname', 'tailscale_ip'] as const) expect(nullOr('string')(n[key]), key).toBe(true);
  expect(nullOr(ISO)(n.started_at), 'started_at').toBe(true);
  const m = n.metrics;
  expect(Object.keys(m).sort()).toEqual(
    ['connected_clients', 'cpu_percent', 'last_health_check', 'memory_mb', 'memory_percent', 'network_rx', 'network_tx', 'vpn_connected'].sort(),
  );
  for (const key of ['cpu_percent', 'memory_percent', 'memory_mb', 'network_rx', 'network_tx', 'connected_clients'] as const) {
    expect(typeof m[key], key).toBe('number');
    expect(m[key], key).toBeGreaterThanOrEqual(0);
  }
  expect(typeof m.vpn_connected).toBe('boolean');
  expect(nullOr(ISO)(m.last_health_check), 'last_health_check').toBe(true);
}

export function expectSpeedTest(r: any, nodeId?: string): void {
  expect(Object.keys(r).sort()).toEqual(['download_mbps', 'latency_ms', 'node_id', 'tested_at', 'upload_mbps']);
  if (nodeId) expect(r.node_id).toBe(nodeId);
  for (const key of ['download_mbps', 'upload_mbps', 'latency_ms'] as const) {
    expect(typeof r[key], key).toBe('number');
    expect(r[key], key).toBeGreaterThanOrEqual(0);
  }
  expect(r.download_mbps).toBeGreaterThan(0);
  expect(r.tested_at).toMatch(ISO);
}
