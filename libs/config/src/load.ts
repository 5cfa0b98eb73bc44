import type { Static, TObject, TSchema } from 'typebox';
import { Value } from 'typebox/value';
import { isSecretVariable, redactUrl } from './redact.js';

export interface ConfigIssue {
  variable: string;
  expected: string;
  /** As given, except: a secret's is withheld (see `hidden`), a URL's credentials are `***`. */
  received: string | undefined;
  /** The variable holds a secret: `received` says only how long the value was. */
  hidden?: true;
}

function formatIssue(issue: ConfigIssue): string {
  if (issue.received === undefined) return `${issue.variable}: missing, expected ${issue.expected}`;
  if (issue.hidden) return `${issue.variable}: expected ${issue.expected}, got ${issue.received}`;
  return `${issue.variable}: expected ${issue.expected}, got ${JSON.stringify(issue.received)}`;
}

// An error message ends up in terminals, supervisors' logs and bug reports.
function shown(variable: string, value: string | undefined): Pick<ConfigIssue, 'received' | 'hidden'> {
  if (value === undefined) return { received: undefined };
  if (isSecretVariable(variable)) return { received: `a value of ${value.length} characters (not shown: ${variable} holds a secret)`, hidden: true };
  return { received: value.includes('://') || value.includes('@') ? redactUrl(value) : value };
}

export class ConfigError extends Error {
  readonly issues: ConfigIssue[];

  constructor(issues: ConfigIssue[]) {
    super(issues.map(formatIssue).join('\n'));
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

const INTEGER = /^[+-]?\d+$/;
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

// Value.Convert is lenient for numbers ("80.5" becomes 80, "" becomes 0, "true" becomes 1);
// a config typo must fail loudly instead, so only well-formed numerals are converted.
function convertible(schema: TSchema, raw: string): boolean {
  const type = (schema as { type?: unknown }).type;
  if (type === 'integer') return INTEGER.test(raw);
  if (type === 'number') return NUMBER.test(raw);
  return true;
}

function annotation(schema: TSchema | undefined, key: 'expected' | 'description'): string | undefined {
  const value = (schema as Record<string, unknown> | undefined)?.[key];
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

function pointerToVariable(instancePath: string): string {
  const first = instancePath.split('/')[1] ?? '';
  return first.replace(/~1/g, '/').replace(/~0/g, '~');
}

/**
 * Reads the schema's variables from `env`, applies defaults, converts numbers and booleans,
 * and returns the typed config, or throws a ConfigError naming every bad variable.
 * An empty variable counts as unset, so `FOO=` in a compose file falls back to the default.
 */
export function loadConfig<S extends TObject>(schema: S, env: Record<string, string | undefined> = process.env): Static<S> {
  const properties = schema.properties as Record<string, TSchema>;
  const raw: Record<string, string> = {};
  for (const name of Object.keys(properties)) {
    const value = env[name];
    if (value !== undefined && value !== '') raw[name] = value;
  }

  const value = Value.Default(schema, { ...raw }) as Record<string, unknown>;
  for (const [name, prop] of Object.entries(properties)) {
    const current = value[name];
    if (typeof current === 'string' && convertible(prop, current)) {
      value[name] = Value.Convert(prop, current);
    }
  }

  const issues = new Map<string, ConfigIssue>();
  const fallback = (name: string, message: string): ConfigIssue => {
    const prop = properties[name];
    return {
      variable: name,
      expected: annotation(prop, 'expected') ?? annotation(prop, 'description') ?? message,
      ...shown(name, raw[name]),
    };
  };
  for (const error of Value.Errors(schema, value)) {
    if (error.keyword === 'required') {
      for (const name of error.params.requiredProperties) {
        if (!issues.has(name)) issues.set(name, fallback(name, 'a value'));
      }
      continue;
    }
    const name = pointerToVariable(error.instancePath);
    if (issues.has(name)) continue;
    const message = error.keyword === '~refine' ? error.params.message : error.message;
    issues.set(name, fallback(name, message.replace(/^expected /, '')));
  }

  if (issues.size > 0) {
    const order = Object.keys(properties);
    throw new ConfigError([...issues.values()].sort((a, b) => order.indexOf(a.variable) - order.indexOf(b.variable)));
  }
  return value as Static<S>;
}

// 78 is EX_CONFIG from sysexits.h: supervisors can tell "fix the config" from a crash.
const EX_CONFIG = 78;

export function loadConfigOrExit<S extends TObject>(service: string, schema: S, env: Record<string, string | undefined> = process.env): Static<S> {
  try {
    return loadConfig(schema, env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const lines = err.issues.map((issue) => `  ${formatIssue(issue)}`).join('\n');
    process.stderr.write(`${service}: invalid configuration\n${lines}\n`);
    return process.exit(EX_CONFIG);
  }
}
