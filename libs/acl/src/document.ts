import { ACL_LIMITS } from '@switchyard/contracts';
import { fail, type Segments } from './path.js';
import type { PolicyDocument } from './types.js';

// The shape of a policy document: which keys, which types, how many. What the names mean is
// compile.ts's. Every refusal names the place and the reason; every bound is ACL_LIMITS's.

const TOP_KEYS = ['groups', 'tagOwners', 'hosts', 'acls', 'tests'] as const;
/** Keys of Tailscale's format that Switchyard does not implement: named as such, not as typos. */
const TAILSCALE_ONLY = new Set(['ssh', 'grants', 'autoApprovers', 'nodeAttrs', 'postures', 'derpMap', 'disableIPv4', 'randomizeClientPort', 'OneCGNATRoute', 'ipsets']);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function checkKeys(value: Record<string, unknown>, allowed: readonly string[], at: Segments, what: string): void {
  for (const key of Object.keys(value)) {
    if (allowed.includes(key)) continue;
    if (at.length === 0 && TAILSCALE_ONLY.has(key)) fail([key], `"${key}" is part of Tailscale's format that Switchyard does not implement (it knows ${allowed.join(', ')})`);
    fail([...at, key], `unknown key in ${what} (it has ${allowed.join(', ')})`);
  }
}

function string(v: unknown, at: Segments): string {
  if (typeof v !== 'string') fail(at, `must be a string, not ${describe(v)}`);
  if (v.length === 0) fail(at, 'must not be empty');
  if (v.length > ACL_LIMITS.maxStringLength) fail(at, `is ${v.length} characters, more than ${ACL_LIMITS.maxStringLength}`);
  return v;
}

function strings(v: unknown, at: Segments, max: number, what: string): string[] {
  if (!Array.isArray(v)) fail(at, `must be a list of strings, not ${describe(v)}`);
  if (v.length > max) fail(at, `has ${v.length} ${what}, more than ${max}`);
  return v.map((s, i) => string(s, [...at, i]));
}

function record(v: unknown, at: Segments, max: number, what: string): Record<string, unknown> {
  if (!isObject(v)) fail(at, `must be an object of ${what}, not ${describe(v)}`);
  const n = Object.keys(v).length;
  if (n > max) fail(at, `has ${n} ${what}, more than ${max}`);
  return v;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

/** Builds a plain object without a prototype setter in the way (`__proto__` is just a key). */
function own<T>(entries: Iterable<readonly [string, T]>): Record<string, T> {
  const out: Record<string, T> = {};
  for (const [k, v] of entries) Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  return out;
}

/** Checks a document's shape and bounds and returns a copy holding only what it checked. */
export function checkDocument(doc: unknown): PolicyDocument {
  if (!isObject(doc)) fail([], `a policy is an object, not ${describe(doc)}`);
  checkKeys(doc, TOP_KEYS, [], 'a policy');
  const out: PolicyDocument = {};

  if (doc.groups !== undefined) {
    const groups = record(doc.groups, ['groups'], ACL_LIMITS.maxGroups, 'groups');
    out.groups = own(Object.entries(groups).map(([name, members]) => [name, strings(members, ['groups', name], ACL_LIMITS.maxGroupMembers, 'members')] as const));
  }
  if (doc.tagOwners !== undefined) {
    const tags = record(doc.tagOwners, ['tagOwners'], ACL_LIMITS.maxTags, 'tags');
    out.tagOwners = own(Object.entries(tags).map(([tag, owners]) => [tag, strings(owners, ['tagOwners', tag], ACL_LIMITS.maxTagOwners, 'owners')] as const));
  }
  if (doc.hosts !== undefined) {
    const hosts = record(doc.hosts, ['hosts'], ACL_LIMITS.maxHosts, 'hosts');
    out.hosts = own(Object.entries(hosts).map(([name, address]) => [name, string(address, ['hosts', name])] as const));
  }
  if (doc.acls !== undefined) {
    if (!Array.isArray(doc.acls)) fail(['acls'], `must be a list of rules, not ${describe(doc.acls)}`);
    if (doc.acls.length > ACL_LIMITS.maxRules) fail(['acls'], `has ${doc.acls.length} rules, more than ${ACL_LIMITS.maxRules}`);
    out.acls = doc.acls.map((rule: unknown, i) => {
      const at = ['acls', i];
      if (!isObject(rule)) fail(at, `a rule is an object, not ${describe(rule)}`);
      checkKeys(rule, ['action', 'src', 'dst'], at, 'a rule');
      if (rule.action !== 'accept') {
        fail(
          [...at, 'action'],
          rule.action === undefined ? 'required: "accept"' : `must be "accept" (rules only accept; anything not accepted is denied), not ${JSON.stringify(rule.action)}`,
        );
      }
      if (rule.src === undefined) fail([...at, 'src'], 'required: the sources the rule accepts');
      if (rule.dst === undefined) fail([...at, 'dst'], 'required: the destinations the rule accepts');
      const src = strings(rule.src, [...at, 'src'], ACL_LIMITS.maxRuleEntries, 'sources');
      const dst = strings(rule.dst, [...at, 'dst'], ACL_LIMITS.maxRuleEntries, 'destinations');
      if (!src.length) fail([...at, 'src'], 'must name at least one source');
      if (!dst.length) fail([...at, 'dst'], 'must name at least one destination');
      return { action: 'accept' as const, src, dst };
    });
  }
  if (doc.tests !== undefined) {
    if (!Array.isArray(doc.tests)) fail(['tests'], `must be a list of tests, not ${describe(doc.tests)}`);
    if (doc.tests.length > ACL_LIMITS.maxTests) fail(['tests'], `has ${doc.tests.length} tests, more than ${ACL_LIMITS.maxTests}`);
    let cases = 0;
    out.tests = doc.tests.map((test: unknown, i) => {
      const at = ['tests', i];
      if (!isObject(test)) fail(at, `a test is an object, not ${describe(test)}`);
      checkKeys(test, ['src', 'accept', 'deny'], at, 'a test');
      if (test.src === undefined) fail([...at, 'src'], 'required: who connects');
      const src = string(test.src, [...at, 'src']);
      const accept = test.accept === undefined ? undefined : strings(test.accept, [...at, 'accept'], ACL_LIMITS.maxTestCases, 'cases');
      const deny = test.deny === undefined ? undefined : strings(test.deny, [...at, 'deny'], ACL_LIMITS.maxTestCases, 'cases');
      const n = (accept?.length ?? 0) + (deny?.length ?? 0);
      if (n === 0) fail(at, 'checks nothing: give it accept or deny cases');
      if (n > ACL_LIMITS.maxTestCases) fail(at, `has ${n} cases, more than ${ACL_LIMITS.maxTestCases}`);
      cases += n;
      if (cases > ACL_LIMITS.maxTestCasesTotal) fail(at, `brings the cases of all tests past ${ACL_LIMITS.maxTestCasesTotal}`);
      return { src, ...(accept ? { accept } : {}), ...(deny ? { deny } : {}) };
    });
  }
  return out;
}
