import { checkDocument } from './document.js';
import { inRange, parseCidr, parseIp, singleAddress, type Ip, type IpRange } from './ip.js';
import { GROUP, HOST, TAG, USER } from './names.js';
import { fail, type Segments } from './path.js';
import type { CompiledPolicy, CompileOptions, ConnectionDestination, ConnectionSource, Decision, PolicyDocument, PolicyTest } from './types.js';

// A policy compiled into lookups. A decision looks up the rules that name the destination's
// tags (and those for any pool), in rule order, and stops at the first that accepts: the source
// check is one bit of the user's rule set (by name or through any group, expanded at compile
// time, so a user in many groups costs nothing more) or a few range comparisons (addresses),
// the port check a few comparisons. Nothing is parsed per connection but the client's address,
// once, and only when a candidate rule names addresses.

/** Who a rule accepts besides the users whose rule sets hold it. */
interface Sources {
  readonly any: boolean;
  readonly ranges: readonly IpRange[];
}

/**
 * The destinations of one tag (or of `*`) as flat (rule, lo, hi) triples in rule order, a
 * triple per port range. Flat because the load balancer walks them once per connection, its
 * caches cold from everything else a connection does: as an object per entry and an array of
 * ports each, the walk of a 200-rule policy showed as twice the share of the worker's CPU it
 * does as one typed array (bench/acl-warm-path.ts --profile), though in a hot loop the two cost
 * the same.
 */
type Destinations = Int32Array;
const TRIPLE = 3;

const NONE = Number.POSITIVE_INFINITY;
/** `*` ports: 0 too, the port of a connection whose destination port is not known. */
const ANY_PORT: readonly number[] = [0, 65535];
const DENY: Decision = Object.freeze({ allowed: false, rule: null });

/** A source alias resolved: `*`, a user, a group, or addresses. */
type Source = { kind: 'any' } | { kind: 'user'; name: string } | { kind: 'group'; name: string } | { kind: 'range'; range: IpRange };

export class Compiled implements CompiledPolicy {
  /** Decisions per rule index, frozen and shared: a decision allocates nothing. */
  private readonly accepts: readonly Decision[];

  constructor(
    readonly version: number,
    private readonly sources: readonly Sources[],
    private readonly byTag: ReadonlyMap<string, Destinations>,
    private readonly anyTag: Destinations,
    /** Per proxy user the policy names (directly or in a group): a bit per rule that accepts it. */
    private readonly rulesOf: ReadonlyMap<string, Uint8Array>,
    readonly tests: readonly PolicyTest[],
    readonly warnings: readonly string[],
    /** What runPolicyTests needs to read a test's cases. */
    readonly names: { readonly hosts: ReadonlyMap<string, IpRange>; readonly groups: ReadonlySet<string>; readonly tags: ReadonlySet<string> },
  ) {
    this.accepts = sources.map((_, rule) => Object.freeze({ allowed: true, rule }));
  }

  get rules(): number {
    return this.sources.length;
  }

  decide(src: ConnectionSource, dst: ConnectionDestination): Decision {
    // A port that is not one (NaN, out of range) is judged as unknown, 0: only `*` ports take it.
    // Without this, NaN would fall inside every range (each comparison in scan is false).
    const port = Number.isInteger(dst.port) && dst.port >= 0 && dst.port <= 65535 ? dst.port : 0;
    const probe: Probe = { rules: src.user ? this.rulesOf.get(src.user) : undefined, address: src.address, ip: undefined, best: NONE };
    this.scan(this.anyTag, probe, port);
    for (const tag of dst.tags) {
      const entries = this.byTag.get(tag);
      if (entries) this.scan(entries, probe, port);
    }
    return probe.best === NONE ? DENY : this.accepts[probe.best]!;
  }

  /** Lowers `probe.best` to the first rule of `destinations` (in rule order) that accepts. */
  private scan(destinations: Destinations, probe: Probe, port: number): void {
    for (let i = 0; i < destinations.length; i += TRIPLE) {
      const rule = destinations[i]!;
      if (rule >= probe.best) return;
      if (port < destinations[i + 1]! || port > destinations[i + 2]!) continue;
      if (this.accepted(rule, probe)) {
        probe.best = rule;
        return;
      }
    }
  }

  private accepted(rule: number, p: Probe): boolean {
    const s = this.sources[rule]!;
    if (s.any) return true;
    if (p.rules !== undefined && (p.rules[rule >> 3]! & (1 << (rule & 7))) !== 0) return true;
    if (s.ranges.length === 0) return false;
    if (p.ip === undefined) p.ip = parseIp(p.address);
    if (p.ip === null) return false;
    for (const r of s.ranges) if (inRange(p.ip, r)) return true;
    return false;
  }
}

interface Probe {
  /** The rule set of the connection's user, if the policy names it. */
  readonly rules: Uint8Array | undefined;
  readonly address: string;
  /** The client's address, parsed when a rule first needs it; null when it is not an IP. */
  ip: Ip | null | undefined;
  best: number;
}

/** `*`, `N`, `N-M` and comma lists of them: sorted, merged [lo, hi] pairs, or null for any port. */
export function parsePorts(text: string, at: Segments): number[] | null {
  if (text === '*') return null;
  const pairs: [number, number][] = [];
  for (const part of text.split(',')) {
    const m = /^([0-9]{1,5})(?:-([0-9]{1,5}))?$/.exec(part);
    if (!m) fail(at, `"${part}" is not a port: ports are *, N, N-M or a comma list of them (80,443,8000-8080)`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (lo < 1 || hi > 65535) fail(at, `port ${lo < 1 ? lo : hi} is out of range 1-65535`);
    if (lo > hi) fail(at, `the range ${part} runs backwards`);
    pairs.push([lo, hi]);
  }
  pairs.sort((a, b) => a[0] - b[0]);
  const out: number[] = [];
  for (const [lo, hi] of pairs) {
    const last = out.length - 1;
    if (last > 0 && lo <= out[last]! + 1) out[last] = Math.max(out[last]!, hi);
    else out.push(lo, hi);
  }
  return out;
}

/** Splits `alias:ports` at the last colon; a bare `tag:web` is a tag without ports. */
export function splitDestination(text: string, at: Segments): { alias: string; ports: string } {
  const colon = text.lastIndexOf(':');
  const alias = colon < 0 ? text : text.slice(0, colon);
  if (colon < 0 || alias === 'tag' || alias === 'group' || alias === 'autogroup') {
    fail(at, `"${text}" needs its ports: <tag or *>:<ports>, as tag:web:443, tag:db:5432-5440 or *:*`);
  }
  return { alias, ports: text.slice(colon + 1) };
}

const looksLikeAddress = (s: string) => s.includes(':') || s.includes('/') || /^[0-9.]+$/.test(s);

function resolveSource(alias: string, at: Segments, hosts: ReadonlyMap<string, IpRange>, groups: ReadonlySet<string>): Source {
  if (alias === '*') return { kind: 'any' };
  if (alias.startsWith('group:')) {
    if (!groups.has(alias)) fail(at, `${alias} is not defined in groups`);
    return { kind: 'group', name: alias };
  }
  if (alias.startsWith('tag:')) fail(at, `${alias}: tags name pools, which are destinations; a source is *, a proxy user, a group, a host or an address`);
  if (alias.startsWith('autogroup:')) fail(at, `${alias}: autogroups are not supported; a source is *, a proxy user, a group, a host or an address`);
  if (looksLikeAddress(alias)) {
    const range = parseCidr(alias);
    if (typeof range === 'string') fail(at, range);
    return { kind: 'range', range };
  }
  const host = hosts.get(alias);
  if (host) return { kind: 'range', range: host };
  if (USER.test(alias)) return { kind: 'user', name: alias };
  if (HOST.test(alias)) fail(at, `"${alias}" is not defined in hosts (and, with a dash or dot, cannot be a proxy user name)`);
  fail(at, `"${alias}" is not a source: use *, a proxy user name, group:<name>, a name from hosts, an IP or a CIDR`);
}

/**
 * Checks a policy document (the shape, then what each name means) and compiles it into
 * lookups. Throws PolicyError with the path and reason of the first problem.
 */
export function compilePolicy(doc: unknown, opts: CompileOptions = {}): CompiledPolicy {
  const policy: PolicyDocument = checkDocument(doc);

  const groups = new Set<string>();
  const membersOf = new Map<string, Set<string>>();
  for (const [name, members] of Object.entries(policy.groups ?? {})) {
    if (!GROUP.test(name)) fail(['groups', name], 'a group is named group:<name>: lower-case letters, digits, _, . and -');
    groups.add(name);
    const set = new Set<string>();
    members.forEach((member, i) => {
      const at = ['groups', name, i];
      if (member.startsWith('group:')) fail(at, `${member}: groups do not nest; list the proxy users`);
      if (!USER.test(member)) fail(at, `"${member}" is not a proxy user name (lower-case letters, digits and _, no dash)`);
      set.add(member);
    });
    membersOf.set(name, set);
  }

  const hosts = new Map<string, IpRange>();
  for (const [name, address] of Object.entries(policy.hosts ?? {})) {
    if (!HOST.test(name)) fail(['hosts', name], 'a host name is lower-case letters, digits, _, . and -');
    if (looksLikeAddress(name)) fail(['hosts', name], 'a host name must not be (or look like) an address');
    if (USER.test(name)) fail(['hosts', name], `"${name}" could be a proxy user's name; give hosts a dash or a dot (${name}-net) so a source is never ambiguous`);
    const range = parseCidr(address);
    if (typeof range === 'string') fail(['hosts', name], range);
    hosts.set(name, range);
  }

  const tags = new Set<string>();
  for (const [tag, owners] of Object.entries(policy.tagOwners ?? {})) {
    if (!TAG.test(tag)) fail(['tagOwners', tag], 'a tag is tag:<name>: lower-case letters, digits and -, starting with a letter or digit');
    tags.add(tag);
    owners.forEach((owner, i) => {
      const at = ['tagOwners', tag, i];
      if (owner.startsWith('group:')) {
        if (!groups.has(owner)) fail(at, `${owner} is not defined in groups`);
      } else if (!USER.test(owner)) fail(at, `"${owner}" is not an owner: a proxy user name or group:<name>`);
    });
  }

  const sources: Sources[] = [];
  const byTag = new Map<string, number[]>();
  const anyTag: number[] = [];
  const rules = policy.acls ?? [];
  // Bounded by the text: at most maxRules bits per user the policy names, and the expansion is
  // at most rules × group members, each set once (a rule naming a group twice sets it once).
  const rulesOf = new Map<string, Uint8Array>();
  const accepts = (user: string, r: number) => {
    let bits = rulesOf.get(user);
    if (!bits) rulesOf.set(user, (bits = new Uint8Array((rules.length + 7) >> 3)));
    bits[r >> 3]! |= 1 << (r & 7);
  };
  rules.forEach((rule, r) => {
    const ranges: IpRange[] = [];
    const ruleGroups = new Set<string>();
    let any = false;
    rule.src.forEach((alias, i) => {
      const s = resolveSource(alias, ['acls', r, 'src', i], hosts, groups);
      if (s.kind === 'any') any = true;
      else if (s.kind === 'user') accepts(s.name, r);
      else if (s.kind === 'group') ruleGroups.add(s.name);
      else ranges.push(s.range);
    });
    for (const g of ruleGroups) for (const member of membersOf.get(g)!) accepts(member, r);
    sources.push({ any, ranges });
    rule.dst.forEach((text, i) => {
      const at = ['acls', r, 'dst', i];
      const { alias, ports } = splitDestination(text, at);
      const ranges = parsePorts(ports, at) ?? ANY_PORT;
      const triples: number[] = [];
      for (let i = 0; i < ranges.length; i += 2) triples.push(r, ranges[i]!, ranges[i + 1]!);
      if (alias === '*') return void anyTag.push(...triples);
      if (!alias.startsWith('tag:')) {
        fail(at, `"${alias}" is not a destination: pools are reached by their tags, so a destination is tag:<name>:<ports> or *:<ports>`);
      }
      if (!TAG.test(alias)) fail(at, `"${alias}" is not a tag: tag:<name>, lower-case letters, digits and -`);
      if (!tags.has(alias)) fail(at, `${alias} is not in tagOwners (a tag must be declared there before a rule names it)`);
      const list = byTag.get(alias);
      if (list) list.push(...triples);
      else byTag.set(alias, triples);
    });
  });

  const warnings: string[] = [];
  if (opts.knownTags) {
    const known = new Set(opts.knownTags);
    for (const tag of tags) if (!known.has(tag)) warnings.push(`${tag} is in tagOwners, but no pool carries it yet`);
  }

  const flat = new Map([...byTag].map(([tag, triples]) => [tag, Int32Array.from(triples)]));
  const compiled = new Compiled(opts.version ?? 0, sources, flat, Int32Array.from(anyTag), rulesOf, policy.tests ?? [], warnings, { hosts, groups, tags });
  // The tests block must at least read: a case that names nothing is an error now, not a failure later.
  compiled.tests.forEach((test, t) => {
    readTestSource(compiled, test.src, ['tests', t, 'src']);
    test.accept?.forEach((d, i) => readTestDestination(compiled, d, ['tests', t, 'accept', i]));
    test.deny?.forEach((d, i) => readTestDestination(compiled, d, ['tests', t, 'deny', i]));
  });
  return compiled;
}

/**
 * A test's `src` as one connection's source: a proxy user (with no address, so it matches no
 * host, IP or CIDR rule), an IP, or a host of one address.
 */
export function readTestSource(c: Compiled, src: string, at: Segments): ConnectionSource {
  if (src === '*' || src.startsWith('group:') || src.startsWith('tag:') || src.startsWith('autogroup:')) {
    fail(at, `"${src}": a test's source is one connection's: a proxy user, an IP, or a host of one address${src.startsWith('group:') ? ' (name one member of the group)' : ''}`);
  }
  if (looksLikeAddress(src)) {
    if (src.includes('/')) fail(at, `"${src}": a test's source is one address, not a CIDR`);
    const ip = parseIp(src);
    if (!ip) fail(at, `"${src}" is not an IPv4 or IPv6 address`);
    return { address: src };
  }
  const host = c.names.hosts.get(src);
  if (host) {
    if (host.lo !== host.hi) fail(at, `host "${src}" is a range; a test's source is one address`);
    return { address: singleAddress(host)! };
  }
  if (USER.test(src)) return { user: src, address: '' };
  fail(at, `"${src}" is not a proxy user name, an IP, or a name from hosts`);
}

/** A test's destination: one tag declared in tagOwners and one port, `tag:db:5432`. */
export function readTestDestination(c: Compiled, text: string, at: Segments): ConnectionDestination {
  const { alias, ports } = splitDestination(text, at);
  if (!alias.startsWith('tag:')) fail(at, `"${text}": a test's destination is one pool tag and one port, tag:<name>:<port>`);
  if (!c.names.tags.has(alias)) fail(at, `${alias} is not in tagOwners`);
  if (!/^[0-9]{1,5}$/.test(ports) || Number(ports) < 1 || Number(ports) > 65535) fail(at, `"${ports}": a test's destination has one port, 1-65535`);
  return { tags: [alias], port: Number(ports) };
}
