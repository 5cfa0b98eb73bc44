/**
 * What an API key may do. A route requires exactly one scope; a key holds a set of them, and
 * a scope held grants the scopes it implies:
 *
 * | scope         | grants                                                                     |
 * |---------------|----------------------------------------------------------------------------|
 * | `read`        | every GET of pools, nodes, orders, activity, speed tests, sleep state,     |
 * |               | tunnels                                                                    |
 * | `pools:write` | changes to pools and nodes: orders, restart, sleep and wake, speed tests,  |
 * |               | the balancing strategy, tunnels to a node (open, close, rotate)            |
 * | `proxy`       | the tenant's proxy users: create, list, revoke                             |
 * | `keys`        | the tenant's API keys: create, list, rotate, revoke (never wider than own) |
 * | `write`       | `read`, `pools:write`, `proxy` and `keys`                                  |
 * | `admin`       | everything, in every tenant: tenants, any tenant's keys                    |
 *
 * Implication is one level deep on purpose: a reader of this table needs no closure to know
 * what a key can do.
 */
export const SCOPES = ['read', 'write', 'pools:write', 'proxy', 'keys', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

const IMPLIES: Record<Scope, readonly Scope[]> = {
  read: [],
  'pools:write': [],
  proxy: [],
  keys: [],
  write: ['read', 'pools:write', 'proxy', 'keys'],
  admin: ['read', 'write', 'pools:write', 'proxy', 'keys'],
};

export const isScope = (s: string): s is Scope => (SCOPES as readonly string[]).includes(s);

/** Every scope the held ones grant, themselves included. */
export function grantedBy(held: readonly Scope[]): Set<Scope> {
  const granted = new Set<Scope>();
  for (const s of held) {
    granted.add(s);
    for (const implied of IMPLIES[s]) granted.add(implied);
  }
  return granted;
}

export const grants = (held: readonly Scope[], required: Scope): boolean => grantedBy(held).has(required);

/** The requested scopes the held ones do not grant: what makes a new key wider than its issuer. */
export function wider(requested: readonly Scope[], held: readonly Scope[]): Scope[] {
  const granted = grantedBy(held);
  return requested.filter((s) => !granted.has(s));
}

/** A set without the scopes another member already implies, in SCOPES order: what a key shows. */
export function normalize(scopes: readonly Scope[]): Scope[] {
  const unique = [...new Set(scopes)];
  return SCOPES.filter((s) => unique.includes(s) && !unique.some((o) => o !== s && IMPLIES[o].includes(s)));
}

/** Scopes of a key made before scopes existed (migration 0007), and of the compat Basic account. */
export const LEGACY_SCOPES: Record<'admin' | 'member', Scope[]> = { admin: ['admin'], member: ['write'] };

/**
 * The route-schema part that declares a route's scope: the OpenAPI document shows it as the
 * operation's security requirement and as `x-required-scope`, and the key check enforces it
 * (http/auth.ts). `basic` adds the compat surface's HTTP Basic scheme.
 */
export function requires(scope: Scope, opts: { basic?: boolean } = {}): { security: Array<Record<string, string[]>>; 'x-required-scope': Scope } {
  return {
    security: opts.basic ? [{ apiKey: [scope] }, { basic: [scope] }] : [{ apiKey: [scope] }],
    'x-required-scope': scope,
  };
}

/** The scope a route's schema declares, if any. */
export function requiredScopeOf(schema: unknown): Scope | undefined {
  const declared = (schema as { 'x-required-scope'?: unknown } | undefined)?.['x-required-scope'];
  return typeof declared === 'string' && isScope(declared) ? declared : undefined;
}

declare module 'fastify' {
  interface FastifySchema {
    /** The scope a key needs for the route (requires()); @fastify/swagger copies `x-` keys into the operation. */
    'x-required-scope'?: Scope;
  }
}
