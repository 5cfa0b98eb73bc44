import { isIPv4 } from 'node:net';
import { describe, expect, it } from 'vitest';
import { ACL_LIMITS, AclPolicy, schemaIssues } from '@switchyard/contracts';
import { compilePolicy, loadPolicy, parsePolicy, PolicyError, runPolicyTests, type PolicyDocument } from '../src/index.js';
import { parseCidr, parseIp } from '../src/ip.js';

const EXAMPLE = `{
  // Engineers reach the web pools; only alice and the office reach the database.
  "groups": {
    "group:eng": ["alice", "bob",],   // trailing commas are fine
  },
  "tagOwners": { "tag:web": ["group:eng"], "tag:db": ["alice"], "tag:ssh": [] },
  "hosts": { "office-net": "10.1.0.0/16", "lab.v6": "fd00:1::/64", "bastion-1": "192.168.0.7" },
  "acls": [
    { "action": "accept", "src": ["group:eng"], "dst": ["tag:web:80,443"] },
    { "action": "accept", "src": ["alice", "office-net"], "dst": ["tag:db:5432"] },
    { "action": "accept", "src": ["lab.v6", "bastion-1"], "dst": ["*:22"] },
    /* block comments too */
  ],
  "tests": [
    { "src": "bob", "accept": ["tag:web:443"], "deny": ["tag:db:5432"] },
    { "src": "10.1.2.3", "accept": ["tag:db:5432"], "deny": ["tag:web:80"] },
  ],
}`;

/** The PolicyError a call throws. */
function errorOf(fn: () => unknown): PolicyError {
  try {
    fn();
  } catch (err) {
    if (err instanceof PolicyError) return err;
    throw err;
  }
  throw new Error('expected a PolicyError, got none');
}

const policy = (acls: PolicyDocument['acls'], rest: Omit<PolicyDocument, 'acls'> = {}) => compilePolicy({ tagOwners: { 'tag:web': [], 'tag:db': [] }, ...rest, acls });
const rule = (src: string[], dst: string[]) => ({ action: 'accept' as const, src, dst });

describe('parsePolicy (HuJSON)', () => {
  it('reads comments and trailing commas, and yields a document of the contract shape', () => {
    const doc = parsePolicy(EXAMPLE);
    expect(doc.groups).toEqual({ 'group:eng': ['alice', 'bob'] });
    expect(doc.acls).toHaveLength(3);
    expect(schemaIssues(AclPolicy, doc)).toEqual([]);
  });

  it.each([
    ['{ "acls": [ }', 1, 13, 'a value was expected'],
    ['{\n  "acls": []\n  "hosts": {}\n}', 3, 3, 'a comma was expected'],
    ['{\n  "groups": { "group:a": ["x"] ', 2, 32, 'a closing brace } was expected'],
    ['{ /* open', 1, 3, 'a comment is not closed'],
    ['{ "acls": "x }', 1, 11, 'a string is not closed'],
  ])('names a syntax error with its line and column: %j', (text, line, column, reason) => {
    const err = errorOf(() => parsePolicy(text));
    expect({ line: err.line, column: err.column, reason: err.reason, kind: err.kind }).toEqual({ line, column, reason, kind: 'syntax' });
  });

  it('refuses a duplicate key where it stands', () => {
    const err = errorOf(() => parsePolicy('{\n "hosts": { "a-1": "10.0.0.1",\n   "a-1": "10.0.0.2" } }'));
    expect(err).toMatchObject({ path: 'hosts["a-1"]', line: 3, column: 4, reason: 'duplicate key "a-1"' });
  });

  it('refuses what is not an object, and unknown or unsupported keys, with the path', () => {
    expect(errorOf(() => parsePolicy('[]')).reason).toMatch(/a policy is an object/);
    expect(errorOf(() => parsePolicy('{ "acl": [] }'))).toMatchObject({ path: 'acl', reason: expect.stringMatching(/unknown key/) });
    expect(errorOf(() => parsePolicy('{ "ssh": [] }'))).toMatchObject({ path: 'ssh', reason: expect.stringMatching(/Switchyard does not implement/) });
    const err = errorOf(() => parsePolicy('{\n "acls": [\n  { "action": "accept", "src": ["*"], "dst": ["*:*"], "proto": "tcp" } ] }'));
    expect(err).toMatchObject({ path: 'acls[0].proto', line: 3, reason: expect.stringMatching(/unknown key in a rule/) });
  });

  it('treats __proto__ as a key like any other (and refuses it as unknown)', () => {
    expect(errorOf(() => parsePolicy('{ "__proto__": { "acls": [] } }'))).toMatchObject({ path: '__proto__', reason: expect.stringMatching(/unknown key/) });
    expect(errorOf(() => loadPolicy('{ "groups": { "__proto__": ["alice"] } }'))).toMatchObject({ path: 'groups.__proto__', reason: expect.stringMatching(/group:<name>/) });
    expect(({} as Record<string, unknown>).acls).toBeUndefined();
  });

  it('bounds the text and its nesting before parsing', () => {
    const big = `{ "hosts": { ${Array.from({ length: 3000 }, (_, i) => `"h-${i}": "10.0.${i >> 8}.${i & 255}"`).join(', ')} } }`;
    expect(Buffer.byteLength(big)).toBeGreaterThan(ACL_LIMITS.maxTextBytes);
    expect(errorOf(() => parsePolicy(big))).toMatchObject({ kind: 'size', reason: expect.stringMatching(/bytes, more than 65536/) });
    const deep = `{ "acls": ${'['.repeat(30_000)}`;
    expect(errorOf(() => parsePolicy(deep))).toMatchObject({ line: 1, column: 11 + ACL_LIMITS.maxDepth - 1, reason: expect.stringMatching(/nested more than/) });
  });

  it('refuses closes before opens, which would hide deep nesting from the bound', () => {
    // 60 KB: within the size bound; without the check the parser recursed 30 000 levels and overflowed the stack.
    const sneaky = `{"acls":[],"x":${']'.repeat(30_000)},"y":${'['.repeat(30_000)}}`;
    expect(Buffer.byteLength(sneaky)).toBeLessThan(ACL_LIMITS.maxTextBytes);
    expect(errorOf(() => parsePolicy(sneaky))).toMatchObject({ kind: 'syntax', line: 1, column: 17, reason: expect.stringMatching(/unbalanced \]/) });
  });
});

describe('compilePolicy: what the names mean', () => {
  it.each([
    [{ acls: [{ action: 'deny', src: ['*'], dst: ['*:*'] }] }, 'acls[0].action', /must be "accept"/],
    [{ acls: [{ src: ['*'], dst: ['*:*'] }] }, 'acls[0].action', /required/],
    [{ acls: [rule([], ['*:*'])] }, 'acls[0].src', /at least one source/],
    [{ acls: [rule(['*'], ['*'])] }, 'acls[0].dst[0]', /needs its ports/],
    [{ acls: [rule(['group:nope'], ['*:*'])] }, 'acls[0].src[0]', /not defined in groups/],
    [{ acls: [rule(['tag:web'], ['*:*'])] }, 'acls[0].src[0]', /tags name pools/],
    [{ acls: [rule(['alice@example.com'], ['*:*'])] }, 'acls[0].src[0]', /not a source/],
    [{ acls: [rule(['office-net'], ['*:*'])] }, 'acls[0].src[0]', /not defined in hosts/],
    [{ acls: [rule(['10.0.0.1/8'], ['*:*'])] }, 'acls[0].src[0]', /host bits set: did you mean 10\.0\.0\.0\/8/],
    [{ acls: [rule(['10.0.0.0/33'], ['*:*'])] }, 'acls[0].src[0]', /prefix length must be 0-32/],
    [{ acls: [rule(['fd00::/129'], ['*:*'])] }, 'acls[0].src[0]', /prefix length must be 0-128/],
    [{ acls: [rule(['300.1.1.1'], ['*:*'])] }, 'acls[0].src[0]', /not an IPv4 or IPv6 address/],
    [{ acls: [rule(['*'], ['tag:nope:80'])] }, 'acls[0].dst[0]', /not in tagOwners/],
    [{ acls: [rule(['*'], ['alice:80'])] }, 'acls[0].dst[0]', /pools are reached by their tags/],
    [{ acls: [rule(['*'], ['10.0.0.1:80'])] }, 'acls[0].dst[0]', /pools are reached by their tags/],
    [{ acls: [rule(['*'], ['tag:web:0'])] }, 'acls[0].dst[0]', /out of range/],
    [{ acls: [rule(['*'], ['tag:web:65536'])] }, 'acls[0].dst[0]', /out of range/],
    [{ acls: [rule(['*'], ['tag:web:90-80'])] }, 'acls[0].dst[0]', /runs backwards/],
    [{ acls: [rule(['*'], ['tag:web:http'])] }, 'acls[0].dst[0]', /is not a port/],
    [{ acls: [rule(['*'], ['tag:web:80,'])] }, 'acls[0].dst[0]', /is not a port/],
    [{ groups: { 'group:a': ['group:b'] } }, 'groups["group:a"][0]', /do not nest/],
    [{ groups: { 'group:a': ['Alice'] } }, 'groups["group:a"][0]', /not a proxy user name/],
    [{ groups: { eng: ['alice'] } }, 'groups.eng', /group:<name>/],
    [{ hosts: { office: '10.0.0.0/8' } }, 'hosts.office', /could be a proxy user's name/],
    [{ hosts: { '10.0.0.1': '10.0.0.1' } }, 'hosts["10.0.0.1"]', /must not be/],
    [{ hosts: { 'office-net': 'example.com' } }, 'hosts["office-net"]', /not an IPv4 or IPv6 address/],
    [{ tagOwners: { web: [] } }, 'tagOwners.web', /tag:<name>/],
    [{ tagOwners: { 'tag:web': ['group:x'] } }, 'tagOwners["tag:web"][0]', /not defined in groups/],
    [{ tests: [{ src: 'alice' }] }, 'tests[0]', /checks nothing/],
    [{ tests: [{ src: 'alice', accept: ['tag:web:80-90'] }] }, 'tests[0].accept[0]', /not in tagOwners|one port/],
    [{ tests: [{ src: 'group:eng', accept: ['*:80'] }] }, 'tests[0].src', /one member of the group/],
    [{ acls: 'x' }, 'acls', /must be a list of rules/],
    [{ groups: { 'group:a': 'alice' } }, 'groups["group:a"]', /must be a list of strings/],
  ])('refuses %j at %s', (doc, path, reason) => {
    expect(errorOf(() => compilePolicy(doc))).toMatchObject({ path, reason: expect.stringMatching(reason), kind: 'invalid' });
  });

  it('loadPolicy places a meaning error at its line and column in the text', () => {
    const text = EXAMPLE.replace('"tag:db:5432"] },', '"tag:db:5432", "tag:cache:6379"] },');
    const err = errorOf(() => loadPolicy(text));
    expect(err.path).toBe('acls[1].dst[1]');
    const line = text.split('\n')[err.line! - 1]!;
    expect(line.slice(err.column! - 1)).toMatch(/^"tag:cache:6379"/);
    expect(err.message).toMatch(/^acls\[1\]\.dst\[1\] \(line \d+, column \d+\): tag:cache is not in tagOwners/);
  });

  it('warns of declared tags no pool carries, when told the pools', () => {
    const c = compilePolicy(parsePolicy(EXAMPLE), { knownTags: ['tag:web', 'tag:db'] });
    expect(c.warnings).toEqual(['tag:ssh is in tagOwners, but no pool carries it yet']);
    expect(compilePolicy(parsePolicy(EXAMPLE)).warnings).toEqual([]);
  });

  it('carries the version it is given', () => {
    expect(compilePolicy({}, { version: 7 }).version).toBe(7);
    expect(compilePolicy({}).version).toBe(0);
  });
});

describe('decide', () => {
  const c = loadPolicy(EXAMPLE).compiled;

  it('denies everything when no rule accepts: an empty policy is default deny', () => {
    const empty = compilePolicy({});
    expect(empty.decide({ user: 'alice', address: '10.1.2.3' }, { tags: ['tag:web'], port: 80 })).toEqual({ allowed: false, rule: null });
    expect(empty.rules).toBe(0);
  });

  it('users, by name and through their groups', () => {
    expect(c.decide({ user: 'bob', address: '203.0.113.9' }, { tags: ['tag:web'], port: 443 })).toEqual({ allowed: true, rule: 0 });
    expect(c.decide({ user: 'alice', address: '203.0.113.9' }, { tags: ['tag:db'], port: 5432 })).toEqual({ allowed: true, rule: 1 });
    expect(c.decide({ user: 'bob', address: '203.0.113.9' }, { tags: ['tag:db'], port: 5432 })).toEqual({ allowed: false, rule: null });
    expect(c.decide({ user: 'carol', address: '203.0.113.9' }, { tags: ['tag:web'], port: 443 })).toEqual({ allowed: false, rule: null });
    expect(c.decide({ address: '203.0.113.9' }, { tags: ['tag:web'], port: 443 })).toEqual({ allowed: false, rule: null });
  });

  it('a port that is not one (NaN, fractional, out of range) is taken by `*` ports only, by no range', () => {
    const ranged = policy([rule(['*'], ['tag:web:1-65535'])]);
    const any = policy([rule(['*'], ['tag:web:*'])]);
    for (const port of [Number.NaN, 80.5, -1, 65536]) {
      expect({ port, ranged: ranged.decide({ address: '1.2.3.4' }, { tags: ['tag:web'], port }).allowed }).toEqual({ port, ranged: false });
      expect({ port, any: any.decide({ address: '1.2.3.4' }, { tags: ['tag:web'], port }).allowed }).toEqual({ port, any: true });
    }
  });

  it('ports: lists and ranges, nothing outside', () => {
    const p = policy([rule(['*'], ['tag:web:80,443,8000-8010'])]);
    const at = (port: number) => p.decide({ address: '1.2.3.4' }, { tags: ['tag:web'], port }).allowed;
    expect([79, 80, 81, 442, 443, 444, 7999, 8000, 8005, 8010, 8011].map(at)).toEqual([false, true, false, false, true, false, false, true, true, true, false]);
    const any = policy([rule(['*'], ['tag:web:*'])]);
    expect([1, 65535].map((port) => any.decide({ address: 'x' }, { tags: ['tag:web'], port }).allowed)).toEqual([true, true]);
  });

  it('IPv4 hosts and CIDRs, IPv4-mapped clients included', () => {
    expect(c.decide({ address: '10.1.255.255' }, { tags: ['tag:db'], port: 5432 })).toEqual({ allowed: true, rule: 1 });
    expect(c.decide({ address: '::ffff:10.1.0.1' }, { tags: ['tag:db'], port: 5432 })).toEqual({ allowed: true, rule: 1 });
    expect(c.decide({ address: '10.2.0.1' }, { tags: ['tag:db'], port: 5432 }).allowed).toBe(false);
    expect(c.decide({ address: '192.168.0.7' }, { tags: [], port: 22 })).toEqual({ allowed: true, rule: 2 });
    expect(c.decide({ address: '192.168.0.8' }, { tags: [], port: 22 }).allowed).toBe(false);
  });

  it('IPv6 hosts and CIDRs, with zones and compressed forms', () => {
    expect(c.decide({ address: 'fd00:1::abcd' }, { tags: ['tag:web'], port: 22 })).toEqual({ allowed: true, rule: 2 });
    expect(c.decide({ address: 'fd00:1:0:0:ffff:ffff:ffff:ffff%eth0' }, { tags: [], port: 22 }).allowed).toBe(true);
    expect(c.decide({ address: 'fd00:1:0:1::' }, { tags: [], port: 22 }).allowed).toBe(false);
    const p = policy([rule(['2001:db8::/32', '::1'], ['tag:web:443'])]);
    expect(p.decide({ address: '2001:db8:ffff::1' }, { tags: ['tag:web'], port: 443 }).allowed).toBe(true);
    expect(p.decide({ address: '2001:db9::1' }, { tags: ['tag:web'], port: 443 }).allowed).toBe(false);
    expect(p.decide({ address: '::1' }, { tags: ['tag:web'], port: 443 }).allowed).toBe(true);
    expect(p.decide({ address: '127.0.0.1' }, { tags: ['tag:web'], port: 443 }).allowed).toBe(false);
  });

  it('an address that is not an IP matches no address rule, and does not throw', () => {
    const p = policy([rule(['0.0.0.0/0', '::/0'], ['tag:web:*'])]);
    for (const address of ['', 'localhost', '1.2.3', '::g', '10.0.0.1/8']) expect(p.decide({ address }, { tags: ['tag:web'], port: 1 }).allowed).toBe(false);
    expect(p.decide({ address: '8.8.8.8' }, { tags: ['tag:web'], port: 1 }).allowed).toBe(true);
    expect(p.decide({ address: '2001:4860::8888' }, { tags: ['tag:web'], port: 1 }).allowed).toBe(true);
  });

  it('a pool with several tags is reached through any of them; an untagged pool only by *', () => {
    const p = policy([rule(['alice'], ['tag:db:5432']), rule(['bob'], ['*:5432'])]);
    expect(p.decide({ user: 'alice', address: '' }, { tags: ['tag:web', 'tag:db'], port: 5432 })).toEqual({ allowed: true, rule: 0 });
    expect(p.decide({ user: 'alice', address: '' }, { tags: [], port: 5432 }).allowed).toBe(false);
    expect(p.decide({ user: 'bob', address: '' }, { tags: [], port: 5432 })).toEqual({ allowed: true, rule: 1 });
  });

  it('names the first rule that accepts, whichever list it comes from', () => {
    const p = policy([rule(['10.0.0.0/8'], ['tag:web:80']), rule(['*'], ['*:80']), rule(['alice'], ['tag:web:80'])]);
    expect(p.decide({ user: 'alice', address: '10.0.0.1' }, { tags: ['tag:web'], port: 80 }).rule).toBe(0);
    expect(p.decide({ user: 'alice', address: '11.0.0.1' }, { tags: ['tag:web'], port: 80 }).rule).toBe(1);
    const q = policy([rule(['alice'], ['tag:web:81', 'tag:web:80'])]);
    expect(q.decide({ user: 'alice', address: '' }, { tags: ['tag:web'], port: 80 })).toEqual({ allowed: true, rule: 0 });
  });

  it('a user in many groups: each group rule decides for its members only', () => {
    const groups = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`group:g${i}`, ['alice', `u${i}`]]));
    const acls = Array.from({ length: 200 }, (_, i) => rule([`group:g${i}`, `group:g${i}`], [`tag:web:${1000 + i}`]));
    const p = compilePolicy({ groups, tagOwners: { 'tag:web': [] }, acls });
    for (let i = 0; i < 200; i++) {
      const dst = { tags: ['tag:web'], port: 1000 + i };
      expect(p.decide({ user: 'alice', address: '' }, dst)).toEqual({ allowed: true, rule: i });
      expect(p.decide({ user: `u${i}`, address: '' }, dst)).toEqual({ allowed: true, rule: i });
      expect(p.decide({ user: `u${(i + 1) % 200}`, address: '' }, dst).allowed).toBe(false);
    }
  });

  it('a 200-rule policy: each rule decides its own user and port, nothing else gets in', () => {
    const tags = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`tag:t${i}`, []]));
    const acls = Array.from({ length: 200 }, (_, i) => rule([`user${i}`, `10.${i}.0.0/16`], [`tag:t${i % 20}:${1000 + i}`]));
    const p = compilePolicy({ tagOwners: tags, acls });
    expect(p.rules).toBe(200);
    for (let i = 0; i < 200; i++) {
      const dst = { tags: [`tag:t${i % 20}`], port: 1000 + i };
      expect(p.decide({ user: `user${i}`, address: '' }, dst)).toEqual({ allowed: true, rule: i });
      expect(p.decide({ address: `10.${i}.3.4` }, dst)).toEqual({ allowed: true, rule: i });
      expect(p.decide({ user: `user${(i + 1) % 200}`, address: `10.${(i + 1) % 200}.0.1` }, dst).allowed).toBe(false);
      expect(p.decide({ user: `user${i}`, address: '' }, { ...dst, port: dst.port + 1 }).allowed).toBe(false);
    }
  });
});

describe('the tests block: the gate', () => {
  it('passes the example', () => {
    expect(loadPolicy(EXAMPLE).failures).toEqual([]);
  });

  it('names each failing case, the rule that accepted a deny case, and denied accept cases', () => {
    const text = EXAMPLE.replace(
      '{ "src": "bob", "accept": ["tag:web:443"], "deny": ["tag:db:5432"] }',
      '{ "src": "alice", "accept": ["tag:web:22"], "deny": ["tag:web:80", "tag:db:5432"] }',
    );
    const { failures } = loadPolicy(text);
    expect(failures.map((f) => f.message)).toEqual([
      'tests[0].accept[0]: "tag:web:22" from "alice" was denied (no rule accepts it)',
      'tests[0].deny[0]: "tag:web:80" from "alice" was accepted by acls[0]',
      'tests[0].deny[1]: "tag:db:5432" from "alice" was accepted by acls[1]',
    ]);
    expect(failures[2]).toMatchObject({ path: 'tests[0].deny[1]', src: 'alice', dst: 'tag:db:5432', expected: 'deny', rule: 1 });
  });

  it('a user test source has no address; an address or a one-address host has no user', () => {
    const c = compilePolicy({
      tagOwners: { 'tag:db': [] },
      hosts: { 'bastion-1': '192.168.0.7', 'office-net': '10.0.0.0/8' },
      acls: [rule(['bastion-1'], ['tag:db:22'])],
      tests: [
        { src: 'bastion-1', accept: ['tag:db:22'] },
        { src: '192.168.0.7', accept: ['tag:db:22'] },
        { src: 'alice', deny: ['tag:db:22'] },
      ],
    });
    expect(runPolicyTests(c)).toEqual([]);
    expect(errorOf(() => runPolicyTests(c, [{ src: 'office-net', accept: ['tag:db:22'] }]))).toMatchObject({ path: 'tests[0].src', reason: expect.stringMatching(/is a range/) });
    expect(errorOf(() => runPolicyTests(c, [{ src: '10.0.0.0/8', accept: ['tag:db:22'] }])).reason).toMatch(/not a CIDR/);
  });

  it('runs a supplied block against the policy, checked as the document one', () => {
    const c = loadPolicy(EXAMPLE).compiled;
    expect(runPolicyTests(c, [{ src: 'carol', accept: ['tag:web:80'] }]).map((f) => f.path)).toEqual(['tests[0].accept[0]']);
    expect(errorOf(() => runPolicyTests(c, [{ src: 'carol', accept: ['tag:nope:80'] }])).reason).toMatch(/not in tagOwners/);
    expect(() => runPolicyTests({ ...c, decide: () => ({ allowed: true, rule: 0 }) })).toThrow(TypeError);
  });
});

describe('caps: a hostile tenant cannot make the evaluators work without end', () => {
  it.each([
    ['rules', { acls: Array.from({ length: ACL_LIMITS.maxRules + 1 }, () => rule(['*'], ['*:*'])) }, 'acls', /rules, more than 1000/],
    [
      'entries of a rule',
      {
        acls: [
          rule(
            Array.from({ length: ACL_LIMITS.maxRuleEntries + 1 }, (_, i) => `u${i}`),
            ['*:*'],
          ),
        ],
      },
      'acls[0].src',
      /more than 256/,
    ],
    ['groups', { groups: Object.fromEntries(Array.from({ length: ACL_LIMITS.maxGroups + 1 }, (_, i) => [`group:g${i}`, []])) }, 'groups', /more than 256/],
    ['hosts', { hosts: Object.fromEntries(Array.from({ length: ACL_LIMITS.maxHosts + 1 }, (_, i) => [`h-${i}`, '10.0.0.1'])) }, 'hosts', /more than 1024/],
    ['tests', { tests: Array.from({ length: ACL_LIMITS.maxTests + 1 }, () => ({ src: 'a', deny: [] })) }, 'tests', /more than 256/],
    ['string length', { groups: { 'group:a': ['a'.repeat(ACL_LIMITS.maxStringLength + 1)] } }, 'groups["group:a"][0]', /characters, more than 256/],
  ])('%s', (_what, doc, path, reason) => {
    expect(errorOf(() => compilePolicy(doc))).toMatchObject({ path, reason: expect.stringMatching(reason) });
  });

  it('the total of test cases', () => {
    const tests = Array.from({ length: ACL_LIMITS.maxTests }, () => ({ src: 'a', deny: Array.from({ length: ACL_LIMITS.maxTestCases }, () => 'tag:web:1') }));
    expect(errorOf(() => compilePolicy({ tagOwners: { 'tag:web': [] }, tests }))).toMatchObject({ path: 'tests[32]', reason: expect.stringMatching(/past 2048/) });
  });

  it('the largest policy the caps allow compiles and decides', () => {
    const acls = Array.from({ length: ACL_LIMITS.maxRules }, (_, i) => rule(['group:all', `10.${i >> 8}.${i & 255}.0/24`], ['tag:web:443']));
    const members = Array.from({ length: ACL_LIMITS.maxGroupMembers }, (_, i) => `u${i}`);
    const c = compilePolicy({ groups: { 'group:all': members }, tagOwners: { 'tag:web': [] }, acls });
    expect(c.decide({ user: 'u1023', address: '' }, { tags: ['tag:web'], port: 443 })).toEqual({ allowed: true, rule: 0 });
    expect(c.decide({ address: '10.3.231.9' }, { tags: ['tag:web'], port: 443 })).toEqual({ allowed: true, rule: 999 });
    expect(c.decide({ address: '10.4.0.1' }, { tags: ['tag:web'], port: 443 }).allowed).toBe(false);
  });
});

describe('addresses', () => {
  it('parse v4, v6, mapped and embedded forms to one value', () => {
    expect(parseIp('10.0.0.1')).toEqual({ family: 4, value: 0x0a000001 });
    expect(parseIp('::ffff:10.0.0.1')).toEqual({ family: 4, value: 0x0a000001 });
    expect(parseIp('::ffff:a00:1')).toEqual({ family: 4, value: 0x0a000001 });
    expect(parseIp('2001:db8::1')).toEqual({ family: 6, value: 0x20010db8000000000000000000000001n });
    expect(parseIp('::')).toEqual({ family: 6, value: 0n });
    expect(parseIp('64:ff9b::192.0.2.33')).toEqual({ family: 6, value: 0x0064ff9b0000000000000000c0000221n });
    expect(parseIp('1:2:3:4:5:6:7:8')).toEqual({ family: 6, value: 0x00010002000300040005000600070008n });
    expect(parseIp('01.2.3.4')).toBeNull();
  });

  it('take exactly the IPv4 literals node:net takes (the hand-written fast path)', () => {
    const texts = [
      '0.0.0.0',
      '255.255.255.255',
      '1.2.3.4',
      '127.0.0.1',
      '1.2.3',
      '1.2.3.4.5',
      '1..2.3',
      '.1.2.3',
      '1.2.3.',
      '256.1.1.1',
      '1.2.3.1000',
      '00.1.2.3',
      '1.2.3.04',
      '1.2.3.4 ',
      ' 1.2.3.4',
      '1.2.3.a',
      '',
      '.',
      '1.2.3.4/8',
      '١.٢.٣.٤',
    ];
    for (const text of texts) {
      const ip = parseIp(text);
      expect({ text, v4: ip?.family === 4 }).toEqual({ text, v4: isIPv4(text) });
      if (isIPv4(text)) expect(ip!.value).toBe(text.split('.').reduce((v, o) => v * 256 + Number(o), 0));
    }
  });

  it('read CIDRs as ranges, an IPv4-mapped prefix as IPv4', () => {
    expect(parseCidr('0.0.0.0/0')).toEqual({ family: 4, lo: 0, hi: 0xffffffff });
    expect(parseCidr('255.255.255.255')).toEqual({ family: 4, lo: 0xffffffff, hi: 0xffffffff });
    expect(parseCidr('::ffff:10.0.0.0/104')).toEqual({ family: 4, lo: 0x0a000000, hi: 0x0affffff });
    expect(parseCidr('fd00::/8')).toEqual({ family: 6, lo: 0xfd000000000000000000000000000000n, hi: 0xfdffffffffffffffffffffffffffffffn });
  });
});
