import type { HealthCheckSpec, PoolKind, PublishedPort } from '@switchyard/contracts';
import { httpGetRequest, proxyRequest, statusRange, type Probe } from './probes.js';

/** A node's check with everything needed to run it. */
export interface ResolvedCheck {
  readonly probe: Probe;
  readonly intervalMs: number;
  readonly rise: number;
  readonly fall: number;
  readonly graceMs: number;
}

const DEFAULTS = { intervalMs: 2000, timeoutMs: 1000, rise: 2, fall: 3, graceMs: 0 };

/**
 * The check a pool asks for, or the default: exit pools are checked through their proxy
 * (a node whose VPN is down still accepts TCP), app pools by a TCP connect to their first port.
 */
function checkSpecOf(kind: PoolKind, spec: HealthCheckSpec | undefined): HealthCheckSpec {
  return spec ?? { type: kind === 'exit' ? 'proxy' : 'tcp', ...DEFAULTS };
}

function portFor(kind: PoolKind, spec: HealthCheckSpec, ports: readonly PublishedPort[]): PublishedPort | string {
  const wanted = spec.port ?? (spec.type === 'proxy' || kind === 'exit' ? 'proxy' : undefined);
  const port = wanted === undefined ? ports[0] : ports.find((p) => p.name === wanted);
  return port ?? (wanted === undefined ? 'the node publishes no port' : `the node publishes no port "${wanted}"`);
}

/** The check of a running node, or why it cannot be checked. */
export function resolveCheck(kind: PoolKind, poolCheck: HealthCheckSpec | undefined, ports: readonly PublishedPort[], proxyTarget: string): ResolvedCheck | string {
  const spec = checkSpecOf(kind, poolCheck);
  const port = portFor(kind, spec, ports);
  if (typeof port === 'string') return port;
  // A port published on every address is still reached on loopback.
  const host = port.hostIp === '0.0.0.0' || port.hostIp === '' ? '127.0.0.1' : port.hostIp;
  const base = { type: spec.type, host, port: port.hostPort, timeoutMs: spec.timeoutMs };
  let probe: Probe = base;
  if (spec.type === 'http') {
    probe = { ...base, request: httpGetRequest(`${host}:${port.hostPort}`, spec.path ?? '/'), accepts: statusRange(spec.expectStatus) };
  } else if (spec.type === 'proxy') {
    let target: URL;
    try {
      target = new URL(spec.target ?? proxyTarget);
    } catch {
      return `proxy check target is not a URL: ${spec.target}`;
    }
    if (target.protocol !== 'http:' && target.protocol !== 'https:') return `proxy check target must be http:// or https://: ${target.href}`;
    const { request, accepts } = proxyRequest(target);
    probe = { ...base, request, accepts: accepts ?? statusRange(spec.expectStatus) };
  }
  return { probe, intervalMs: spec.intervalMs, rise: spec.rise, fall: spec.fall, graceMs: spec.graceMs };
}
