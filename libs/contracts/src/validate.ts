import type { TSchema } from 'typebox';
import { Compile, type Validator } from 'typebox/compile';
import { catalog, type Payload, type ReplyOf, type RequestSubject, type Subject } from './catalog.js';
import { isKnownCountry } from './countries.js';
import type { PoolSpec, SleepPolicy } from './schemas.js';

/** One problem with one field: `path` is a dotted path ("spec.nodes.min"), "" for the root. */
export interface Issue {
  readonly path: string;
  readonly message: string;
}

export class ContractError extends Error {
  constructor(
    readonly subject: string,
    readonly issues: readonly Issue[],
  ) {
    super(`${subject}: ${formatIssues(issues)}`);
    this.name = 'ContractError';
  }
}

export function formatIssues(issues: readonly Issue[]): string {
  return issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ');
}

const compiled = new WeakMap<TSchema, Validator>();
function validatorOf(schema: TSchema): Validator {
  let v = compiled.get(schema);
  if (!v) {
    v = Compile(schema);
    compiled.set(schema, v);
  }
  return v;
}

/** Checks a value against a schema and names each bad field. */
export function schemaIssues(schema: TSchema, value: unknown): Issue[] {
  const v = validatorOf(schema);
  if (v.Check(value)) return [];
  const issues: Issue[] = [];
  for (const e of v.Errors(value)) {
    // TypeBox reports a closed object twice (schema "false" on the field, then the parent);
    // keep the one that names the field.
    if (e.keyword === 'additionalProperties') continue;
    const path = e.instancePath.replace(/^\//, '').replaceAll('/', '.');
    const message = e.keyword === 'boolean' && e.message === 'schema is false' ? 'unknown field' : e.message;
    if (!issues.some((i) => i.path === path && i.message === message)) issues.push({ path, message });
    if (issues.length >= 20) break;
  }
  return issues;
}

export function payloadIssues(subject: Subject, value: unknown): Issue[] {
  return schemaIssues(catalog[subject].schema, value);
}

/** Throws ContractError unless `value` is a valid payload of `subject`. */
export function assertPayload<S extends Subject>(subject: S, value: unknown): asserts value is Payload<S> {
  const issues = payloadIssues(subject, value);
  if (issues.length) throw new ContractError(subject, issues);
}

export function assertReply<S extends RequestSubject>(subject: S, value: unknown): asserts value is ReplyOf<S> {
  const issues = schemaIssues(catalog[subject].reply, value);
  if (issues.length) throw new ContractError(`${subject} (reply)`, issues);
}

/**
 * The rules a schema cannot say: fields a kind requires and relations between fields.
 * Paths are relative to the spec; callers prefix them ("pool.country").
 */
export function poolSpecIssues(spec: PoolSpec): Issue[] {
  const issues: Issue[] = [];
  if (spec.kind === 'exit') {
    if (!spec.country) issues.push({ path: 'country', message: 'required for an exit pool' });
  } else {
    if (!spec.image) issues.push({ path: 'image', message: 'required for an app pool' });
    if (!spec.ports?.length) issues.push({ path: 'ports', message: 'an app pool needs at least one port' });
  }
  if (spec.country && !isKnownCountry(spec.country)) {
    issues.push({ path: 'country', message: `unknown country "${spec.country}" (expected an ISO 3166-1 alpha-2 code)` });
  }
  if (spec.nodes.min > spec.nodes.max) {
    issues.push({ path: 'nodes.min', message: `must not exceed nodes.max (${spec.nodes.max})` });
  }
  const ports = spec.ports ?? [];
  const portNames = new Set(ports.map((p) => p.name));
  if (portNames.size !== ports.length) issues.push({ path: 'ports', message: 'port names must be unique' });
  const hc = spec.healthCheck;
  if (hc) {
    if (hc.timeoutMs > hc.intervalMs) {
      issues.push({ path: 'healthCheck.timeoutMs', message: `must not exceed healthCheck.intervalMs (${hc.intervalMs})` });
    }
    if (hc.type === 'http' && !hc.path) issues.push({ path: 'healthCheck.path', message: 'required for an http check' });
    if (hc.port && !portNames.has(hc.port)) {
      issues.push({ path: 'healthCheck.port', message: `no port named "${hc.port}" in ports` });
    }
  }
  if (spec.sleep) issues.push(...sleepPolicyIssues(spec.sleep).map((i) => ({ ...i, path: `sleep.${i.path}` })));
  if (spec.network === 'host' && spec.kind === 'app') {
    ports.forEach((p, i) => {
      if (!p.env) issues.push({ path: `ports.${i}.env`, message: 'required with network "host": the image must be told its port' });
    });
  }
  if (spec.publicPort !== undefined && spec.kind !== 'app') {
    issues.push({ path: 'publicPort', message: 'only app pools have a public port; exit pools are reached through the proxy listeners' });
  }
  if (spec.tags && new Set(spec.tags).size !== spec.tags.length) issues.push({ path: 'tags', message: 'tags must be unique' });
  const limits = spec.limits;
  if (limits && limits.softConnections > limits.hardConnections) {
    issues.push({ path: 'limits.softConnections', message: 'must not exceed limits.hardConnections' });
  }
  return issues;
}

/** The rule between sleep policy fields a schema cannot say. Paths are relative to the policy. */
export function sleepPolicyIssues(policy: SleepPolicy): Issue[] {
  if (policy.probeTimeoutMs < policy.probeIntervalMs) {
    return [{ path: 'probeTimeoutMs', message: `must not be shorter than probeIntervalMs (${policy.probeIntervalMs})` }];
  }
  return [];
}
