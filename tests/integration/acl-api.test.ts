import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { natsRequest, startTestSystem, watchSubjects, type SubjectWatch, type TestSystem } from '@switchyard/testkit';
import { requestAclSnapshot } from '@switchyard/service-kit';

// /v1/acl through the real gateway: policies put as HuJSON, checked and gated by their own
// tests, stored with versions, announced on acl.evt.changed through the outbox, served by
// acl.req.snapshot; every member key confined to its own tenant's policy.

const POLICY = `{
  // who is who
  "groups": { "group:eng": ["alice", "bob",], },
  "tagOwners": { "tag:web": ["group:eng"], "tag:db": ["alice"] },
  "hosts": { "office-net": "10.1.0.0/16" },
  "acls": [
    { "action": "accept", "src": ["group:eng"], "dst": ["tag:web:80,443"] },
    { "action": "accept", "src": ["alice", "office-net"], "dst": ["tag:db:5432"] },
  ],
  "tests": [
    { "src": "bob", "accept": ["tag:web:443"], "deny": ["tag:db:5432"] },
  ],
}`;

const hujson = { 'content-type': 'application/hujson' };

describe('/v1/acl', () => {
  let sys: TestSystem;
  let nc: NatsConnection;
  let events: SubjectWatch;
  let redis: Redis;
  const a = { id: '', key: '' };
  const b = { id: '', key: '' };

  async function tenant(name: string, into: { id: string; key: string }) {
    const res = await sys.http('POST', '/v1/tenants', { body: { name } });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    into.id = res.body.id;
    into.key = res.body.apiKey;
  }

  const put = (key: string, text: string, query = '', headers: Record<string, string> = hujson) => sys.http('PUT', `/v1/acl${query}`, { key, rawBody: text, headers });

  beforeAll(async () => {
    sys = await startTestSystem();
    await sys.start('api-gateway');
    nc = await sys.natsClient();
    events = watchSubjects(nc, ['acl.evt.changed']);
    redis = new Redis(process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: 2 });
    await tenant(`acl-a-${randomUUID().slice(0, 8)}`, a);
    await tenant(`acl-b-${randomUUID().slice(0, 8)}`, b);
  });
  afterAll(async () => {
    if (redis) {
      await redis.del(`acl:denied:${a.id}`, `acl:denied:${b.id}`);
      redis.disconnect();
    }
    await sys?.close();
  });

  it('puts, gets and deletes a policy; each change is announced with its version; a put after a delete goes on counting', async () => {
    const none = await sys.http('GET', '/v1/acl', { key: a.key });
    expect(none.status).toBe(200);
    expect(none.body).toEqual({ tenantId: a.id, version: 0, source: null, policy: null, updatedAt: null, denials: {} });

    const first = await put(a.key, POLICY);
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    expect(first.body).toMatchObject({ tenantId: a.id, version: 1 });
    const heard = await events.next((m) => m.data.tenantId === a.id && m.data.version === 1, 10_000);
    expect(heard.data.policy.groups).toEqual({ 'group:eng': ['alice', 'bob'] });
    expect(heard.data.policy.acls).toHaveLength(2);

    const got = await sys.http('GET', '/v1/acl', { key: a.key });
    expect(got.body).toMatchObject({ tenantId: a.id, version: 1, source: POLICY, updatedAt: first.body.updatedAt });
    expect(got.body.policy.hosts).toEqual({ 'office-net': '10.1.0.0/16' });

    // Plain JSON is HuJSON too.
    const json = JSON.stringify({ tagOwners: { 'tag:web': [] }, acls: [{ action: 'accept', src: ['*'], dst: ['tag:web:443'] }] });
    const second = await put(a.key, json, '', { 'content-type': 'application/json' });
    expect(second.status, JSON.stringify(second.body)).toBe(200);
    expect(second.body.version).toBe(2);
    expect((await sys.http('GET', '/v1/acl', { key: a.key })).body.source).toBe(json);

    const removed = await sys.http('DELETE', '/v1/acl', { key: a.key });
    expect(removed.status, JSON.stringify(removed.body)).toBe(200);
    expect(removed.body.version).toBe(3);
    const gone = await events.next((m) => m.data.tenantId === a.id && m.data.version === 3, 10_000);
    expect(gone.data.policy).toBeNull();
    expect((await sys.http('GET', '/v1/acl', { key: a.key })).body).toMatchObject({ version: 3, source: null, policy: null });
    expect((await sys.http('DELETE', '/v1/acl', { key: a.key })).status).toBe(404);

    const again = await put(a.key, POLICY);
    expect(again.body.version).toBe(4);
    await events.next((m) => m.data.tenantId === a.id && m.data.version === 4 && m.data.policy !== null, 10_000);
  });

  it('refuses a policy whose own tests fail, naming each failing case, and keeps the one in force', async () => {
    const before = (await sys.http('GET', '/v1/acl', { key: a.key })).body.version;
    const failing = POLICY.replace('"deny": ["tag:db:5432"]', '"deny": ["tag:db:5432", "tag:web:80"]').replace('"src": ["alice", "office-net"]', '"src": ["group:eng"]');
    const res = await put(a.key, failing);
    expect(res.status).toBe(422);
    expect(res.body.error).toBe('policy_tests_failed');
    expect(res.body.issues).toEqual([
      { field: 'body.tests[0].deny[0]', message: 'tests[0].deny[0]: "tag:db:5432" from "bob" was accepted by acls[1]' },
      { field: 'body.tests[0].deny[1]', message: 'tests[0].deny[1]: "tag:web:80" from "bob" was accepted by acls[0]' },
    ]);
    expect(res.body.message).toContain('tests[0].deny[0]: "tag:db:5432" from "bob" was accepted by acls[1] (and 1 more)');
    expect((await sys.http('GET', '/v1/acl', { key: a.key })).body.version).toBe(before);
  });

  it('names the line and column of bad HuJSON (400) and of a bad policy (422)', async () => {
    const syntax = await put(a.key, '{\n  "acls": [\n    { "action": "accept" "src": ["*"] }\n  ]\n}');
    expect(syntax.status).toBe(400);
    expect(syntax.body.issues).toEqual([{ field: 'body', message: 'a comma was expected (line 3, column 26)' }]);

    const invalid = await put(a.key, '{\n  "tagOwners": { "tag:web": [] },\n  "acls": [\n    { "action": "accept", "src": ["*"], "dst": ["tag:wbe:443"] }\n  ]\n}');
    expect(invalid.status).toBe(422);
    expect(invalid.body.error).toBe('invalid_policy');
    expect(invalid.body.issues).toEqual([{ field: 'body.acls[0].dst[0]', message: expect.stringMatching(/^tag:wbe is not in tagOwners .*\(line 4, column 49\)$/) }]);

    const unknown = await put(a.key, '{ "acls": [], "ssh": [] }');
    expect(unknown.status).toBe(422);
    expect(unknown.body.issues[0].field).toBe('body.ssh');

    expect((await put(a.key, '  ')).status).toBe(400);
    const xml = await sys.http('PUT', '/v1/acl', { key: a.key, rawBody: '<acl/>', headers: { 'content-type': 'application/xml' } });
    expect(xml.status).toBe(415);
  });

  it('bounds what a tenant may put: text size and rule count', async () => {
    const long = `{ "hosts": { ${Array.from({ length: 3000 }, (_, i) => `"h-${i}": "10.0.${i >> 8}.${i & 255}"`).join(', ')} } }`;
    const tooLong = await put(a.key, long);
    expect(tooLong.status).toBe(413);
    expect(tooLong.body.message).toMatch(/more than 65536/);

    const rules = JSON.stringify({ acls: Array.from({ length: 1001 }, () => ({ action: 'accept', src: ['*'], dst: ['*:*'] })) });
    expect(Buffer.byteLength(rules)).toBeLessThan(65536);
    const tooMany = await put(a.key, rules);
    expect(tooMany.status).toBe(422);
    expect(tooMany.body.issues).toEqual([{ field: 'body.acls', message: expect.stringMatching(/has 1001 rules, more than 1000/) }]);
  });

  it('evaluates a hypothetical connection against the policy in force, or a supplied one', async () => {
    const test = (key: string, body: unknown, query = '') => sys.http('POST', `/v1/acl/test${query}`, { key, body });
    const version = (await sys.http('GET', '/v1/acl', { key: a.key })).body.version;
    expect((await test(a.key, { src: { user: 'bob', address: '203.0.113.9' }, dst: { tag: 'tag:web', port: 443 } })).body).toEqual({
      allowed: true,
      rule: 0,
      decidedBy: 'rule',
      version,
    });
    expect((await test(a.key, { src: { user: 'bob', address: '203.0.113.9' }, dst: { tags: ['tag:db'], port: 5432 } })).body).toEqual({
      allowed: false,
      rule: null,
      decidedBy: 'default-deny',
      version,
    });
    expect((await test(a.key, { src: { address: '10.1.7.7' }, dst: { tags: ['tag:web', 'tag:db'], port: 5432 } })).body).toMatchObject({ allowed: true, rule: 1 });
    expect((await test(a.key, { src: { address: '::ffff:10.1.7.7' }, dst: { tag: 'tag:db', port: 5432 } })).body).toMatchObject({ allowed: true, rule: 1 });

    const supplied = '{ "tagOwners": { "tag:web": [] }, "acls": [ { "action": "accept", "src": ["carol"], "dst": ["tag:web:*"] } ] }';
    expect((await test(a.key, { src: { user: 'carol', address: '1.1.1.1' }, dst: { tag: 'tag:web', port: 8080 }, policy: supplied })).body).toEqual({
      allowed: true,
      rule: 0,
      decidedBy: 'rule',
      version: null,
    });
    const badSupplied = await test(a.key, { src: { address: '1.1.1.1' }, dst: { tag: 'tag:web', port: 1 }, policy: '{ "acls": [ }' });
    expect(badSupplied.status).toBe(400);
    expect(badSupplied.body.issues[0].field).toBe('policy');

    // A tenant without a policy: the rules without one apply.
    expect((await test(b.key, { src: { address: '1.1.1.1' }, dst: { tag: 'tag:web', port: 443 } })).body).toEqual({
      allowed: true,
      rule: null,
      decidedBy: 'no-policy',
      version: 0,
    });

    const badAddress = await test(a.key, { src: { address: 'localhost' }, dst: { tag: 'tag:web', port: 443 } });
    expect(badAddress.status).toBe(400);
    expect(badAddress.body.issues).toEqual([{ field: 'src.address', message: 'must be an IPv4 or IPv6 address' }]);
    const badTag = await test(a.key, { src: { address: '1.1.1.1' }, dst: { tag: 'web', port: 443 } });
    expect(badTag.status).toBe(400);
    expect(badTag.body.issues[0].field).toBe('dst.tag');
  });

  it("shows the enforcers' denial counts per rule", async () => {
    await redis.hset(`acl:denied:${a.id}`, { '1': '3', default: '7', junk: 'x' });
    expect((await sys.http('GET', '/v1/acl', { key: a.key })).body.denials).toEqual({ '1': 3, default: 7 });
    expect((await sys.http('GET', '/v1/acl', { key: b.key })).body.denials).toEqual({});
  });

  it("keeps a member key to its own tenant's policy: another tenant's is neither read, written, deleted nor tested", async () => {
    const mine = (await sys.http('GET', '/v1/acl', { key: a.key })).body;
    const q = `?tenantId=${a.id}`;
    const attempts = [
      await sys.http('GET', `/v1/acl${q}`, { key: b.key }),
      await put(b.key, '{}', q),
      await sys.http('DELETE', `/v1/acl${q}`, { key: b.key }),
      await sys.http('POST', `/v1/acl/test${q}`, { key: b.key, body: { src: { user: 'bob', address: '1.1.1.1' }, dst: { tag: 'tag:web', port: 443 } } }),
    ];
    for (const res of attempts) {
      expect(res.status, JSON.stringify(res.body)).toBe(403);
      expect(res.body.issues).toEqual([{ field: 'query.tenantId', message: 'not your tenant' }]);
      expect(JSON.stringify(res.body)).not.toContain('group:eng');
    }
    // B's own view shows nothing of A's.
    expect((await sys.http('GET', '/v1/acl', { key: b.key })).body).toMatchObject({ tenantId: b.id, version: 0, source: null });
    expect((await sys.http('GET', '/v1/acl', { key: a.key })).body).toEqual(mine);
    // Naming itself is fine.
    expect((await sys.http('GET', `/v1/acl?tenantId=${b.id}`, { key: b.key })).status).toBe(200);
  });

  it('lets an admin read and set any tenant', async () => {
    const read = await sys.http('GET', `/v1/acl?tenantId=${a.id}`);
    expect(read.status).toBe(200);
    expect(read.body.source).toBe(POLICY);
    const set = await put(sys.adminKey, '{ "acls": [] }', `?tenantId=${b.id}`);
    expect(set.status, JSON.stringify(set.body)).toBe(200);
    expect(set.body).toMatchObject({ tenantId: b.id, version: 1 });
    expect((await sys.http('GET', '/v1/acl', { key: b.key })).body).toMatchObject({ version: 1, policy: {} });
    expect((await sys.http('GET', `/v1/acl?tenantId=${randomUUID()}`)).status).toBe(404);
  });

  it('needs the write scope to change a policy and read to see one', async () => {
    const created = await sys.http('POST', '/v1/keys', { key: a.key, body: { name: 'reader', scopes: ['read'] } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const reader = created.body.apiKey as string;
    expect((await sys.http('GET', '/v1/acl', { key: reader })).status).toBe(200);
    for (const res of [await put(reader, '{}'), await sys.http('DELETE', '/v1/acl', { key: reader })]) {
      expect(res.status).toBe(403);
      expect(res.body.message).toContain('"write"');
    }
  });

  it('serves acl.req.snapshot: every tenant with its version, or one tenant', async () => {
    const ask = (q: unknown) => natsRequest<any>(nc, 'acl.req.snapshot', q);
    const all = await requestAclSnapshot(ask);
    const byTenant = new Map(all.policies.map((p) => [p.tenantId, p]));
    const aNow = (await sys.http('GET', '/v1/acl', { key: a.key })).body;
    expect(byTenant.get(a.id)).toEqual({ tenantId: a.id, version: aNow.version, policy: aNow.policy });
    expect(byTenant.get(b.id)).toMatchObject({ version: 1, policy: {} });
    const onlyB = await requestAclSnapshot(ask, { tenantId: b.id });
    expect(onlyB.policies.map((p) => p.tenantId)).toEqual([b.id]);
  });
});
