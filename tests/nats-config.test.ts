import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  catalog,
  CONSUMERS,
  deadLetterSubject,
  inboxPrefix,
  KV_BUCKETS,
  NATS_CONFIG_PATH,
  natsPermissions,
  natsServerConfig,
  nkeyVariable,
  replyRefusal,
  SERVICE_NAMES,
  STREAMS,
  streamsOf,
  subjectMatches,
  subjectsReceivedBy,
  subjectsSentBy,
  type ConsumerDef,
  type ServiceName,
  type Subject,
} from '@switchyard/contracts';

// The nats-server configuration is generated from the catalog; these hold the committed file to
// the generator and the generator to the catalog, so a new subject cannot be forgotten and no
// identity gets more than the catalog gives it.

const subjects = Object.keys(catalog) as Subject[];
const allows = (patterns: readonly string[], subject: string) => patterns.some((p) => subjectMatches(p, subject));

describe(NATS_CONFIG_PATH, () => {
  it('is what the catalog generates (run `npm run nats:config` after changing libs/contracts)', () => {
    const committed = readFileSync(new URL(`../${NATS_CONFIG_PATH}`, import.meta.url), 'utf8');
    expect(committed).toBe(natsServerConfig());
  });

  it('names every service by a public-key variable, holds no key itself, and has no other user', () => {
    const committed = readFileSync(new URL(`../${NATS_CONFIG_PATH}`, import.meta.url), 'utf8');
    expect([...committed.matchAll(/nkey: \$(\w+)/g)].map((m) => m[1])).toEqual(SERVICE_NAMES.map((s) => nkeyVariable(s)));
    // A public nkey is U + 55 base32 characters, a seed SU + 56: neither belongs in the file.
    expect(committed).not.toMatch(/\bS?U[A-Z2-7]{55,56}\b/);
    expect(committed).not.toMatch(/user:|password:|token:|no_auth_user/);
    expect(committed).not.toContain('TEST_HARNESS');
  });
});

describe.each(SERVICE_NAMES)('the NATS permissions of %s', (service: ServiceName) => {
  const p = natsPermissions(service);
  const sent = new Set<string>(subjectsSentBy(service));
  const received = new Set<string>(subjectsReceivedBy(service));

  it('allow publishing exactly the catalog subjects it sends', () => {
    expect(subjects.filter((s) => allows(p.publish, s))).toEqual(subjects.filter((s) => sent.has(s)));
  });

  it('allow subscribing to exactly the catalog subjects it receives', () => {
    expect(subjects.filter((s) => allows(p.subscribe, s))).toEqual(subjects.filter((s) => received.has(s)));
  });

  it('allow dead letters only of what it receives, and of the commands and events it sends', () => {
    const parked = subjects.filter((s) => received.has(s) || (sent.has(s) && catalog[s].type !== 'request'));
    expect(subjects.filter((s) => allows(p.publish, deadLetterSubject(s)))).toEqual(parked);
  });

  it("allow its own inbox and no other service's", () => {
    expect(allows(p.subscribe, `${inboxPrefix(service)}.abc.1`)).toBe(true);
    for (const other of SERVICE_NAMES.filter((s) => s !== service)) expect(allows(p.subscribe, `${inboxPrefix(other)}.abc.1`)).toBe(false);
    expect(allows(p.subscribe, '_INBOX.abc.1')).toBe(false);
  });

  it("allow no JetStream call on another service's consumers or buckets, and no delete or purge of a stream", () => {
    for (const c of Object.values(CONSUMERS)) {
      const own = c.service === service;
      expect(allows(p.publish, `$JS.API.CONSUMER.MSG.NEXT.${c.stream}.${c.durable}`)).toBe(own);
      expect(allows(p.publish, `$JS.ACK.${c.stream}.${c.durable}.1.1.1.1.0`)).toBe(own);
      expect(allows(p.publish, `$JS.API.CONSUMER.DELETE.${c.stream}.${c.durable}`)).toBe(false);
    }
    for (const [bucket, def] of Object.entries(KV_BUCKETS)) {
      expect(allows(p.publish, `$KV.${bucket}.some-key`)).toBe(def.service === service);
      expect(allows(p.publish, `$JS.API.CONSUMER.CREATE.KV_${bucket}`)).toBe(def.service === service);
    }
    for (const stream of Object.values(STREAMS)) {
      expect(allows(p.publish, `$JS.API.STREAM.DELETE.${stream.name}`)).toBe(false);
      expect(allows(p.publish, `$JS.API.STREAM.PURGE.${stream.name}`)).toBe(false);
    }
    expect(p.publish.filter((s) => s.endsWith('>') && !s.startsWith('$JS.') && !s.startsWith('$KV.'))).toEqual([]);
  });

  it('allow updating the configuration of the streams it owns only, and creating a durable only with its own filter', () => {
    const uses = new Set<string>(streamsOf(service));
    for (const stream of Object.values(STREAMS)) {
      expect(allows(p.publish, `$JS.API.STREAM.UPDATE.${stream.name}`)).toBe(stream.owner === service);
      expect(allows(p.publish, `$JS.API.STREAM.CREATE.${stream.name}`)).toBe(uses.has(stream.name));
    }
    for (const c of Object.values(CONSUMERS) as ConsumerDef[]) {
      const own = c.service === service;
      const create = `$JS.API.CONSUMER.CREATE.${c.stream}.${c.durable}`;
      expect(allows(p.publish, c.filter ? `${create}.${c.filter}` : create)).toBe(own);
      // Another filter would read what the durable is not for (or, unfiltered, the whole stream).
      expect(allows(p.publish, c.filter ? create : `${create}.pool.cmd.delete`)).toBe(false);
      expect(allows(p.publish, `${create}.dlq.>`)).toBe(false);
    }
  });
});

describe('streams', () => {
  it('each have one owner, which uses the stream', () => {
    for (const stream of Object.values(STREAMS)) expect(streamsOf(stream.owner)).toContain(stream.name);
  });
});

describe('replyRefusal: where a responder may answer', () => {
  it("answers a requester's inbox and a plain inbox, and nothing else", () => {
    expect(replyRefusal('health.req.status', `${inboxPrefix('load-balancer')}.Abc.1`)).toBeUndefined();
    expect(replyRefusal('health.req.status', `${inboxPrefix('api-gateway')}.Abc.7`)).toBeUndefined();
    // The test harness's inbox: no service identity may listen there.
    expect(replyRefusal('health.req.status', '_INBOX.Abc123.4')).toBeUndefined();
    expect(replyRefusal('health.req.status', 'pool.cmd.delete')).toMatch(/pool\.cmd\.delete is not an inbox/);
    expect(replyRefusal('health.req.status', '_INBOX')).toMatch(/not an inbox/);
    expect(replyRefusal('health.req.status', undefined)).toMatch(/without a reply subject/);
    expect(replyRefusal('health.req.status', `${inboxPrefix('exit-node-manager')}.x.1`)).toMatch(/inbox of exit-node-manager, which does not request health\.req\.status/);
    expect(replyRefusal('health.req.status', '_INBOX.>')).toMatch(/not a plain subject/);
    expect(replyRefusal('health.req.status', '_INBOX.a..b')).toMatch(/not a plain subject/);
    for (const s of subjects) if (catalog[s].type !== 'request') expect(replyRefusal('health.req.status', s)).toBeDefined();
  });
});

describe('commands a tenant starts', () => {
  it('are published by api-gateway; other identities may publish only the commands the system sends itself', () => {
    const commands = subjects.filter((s) => catalog[s].type === 'command');
    const others = Object.fromEntries(
      SERVICE_NAMES.filter((s) => s !== 'api-gateway')
        .map((s) => [s, commands.filter((c) => allows(natsPermissions(s).publish, c))] as const)
        .filter(([, allowed]) => allowed.length > 0),
    );
    // A change here is a change of who may order the system around: review it as one.
    expect(others).toEqual({ 'sleep-controller': ['node.cmd.sleep'], 'socket-activator': ['node.cmd.wake'] });
  });
});

/** The table of identities docs/security.md must contain, rendered from the contracts. */
function identityTable(): string {
  const code = (xs: readonly string[]) => (xs.length ? xs.map((x) => `\`${x}\``).join(' ') : '—');
  const rows = SERVICE_NAMES.map((service) => {
    const consumers = Object.values(CONSUMERS).filter((c) => c.service === service);
    const buckets = Object.entries(KV_BUCKETS).filter(([, b]) => b.service === service);
    const js = [
      ...streamsOf(service).map((s) => (STREAMS[s].owner === service ? `${s} (owner)` : s)),
      ...consumers.map((c) => `${c.stream}/${c.durable}`),
      ...buckets.map(([name]) => `KV_${name}`),
    ];
    return `| ${service} | ${code(subjectsSentBy(service))} | ${code(subjectsReceivedBy(service))} | ${code(js)} |`;
  });
  return ['| identity | publishes | subscribes to | JetStream: streams it uses (its owner updates one), consumers, buckets |', '|---|---|---|---|', ...rows].join('\n');
}

describe('docs/security.md', () => {
  it('shows what each identity may do, as the contracts define it', () => {
    const doc = readFileSync(new URL('../docs/security.md', import.meta.url), 'utf8');
    expect(doc, `update the identity table in docs/security.md to:\n\n${identityTable()}\n`).toContain(identityTable());
  });
});

describe('infra/nats/identities.mjs', () => {
  it('knows the services of the contracts', () => {
    const script = readFileSync(new URL('../infra/nats/identities.mjs', import.meta.url), 'utf8');
    const listed = /export const SERVICES = \[([^\]]*)\]/
      .exec(script)![1]!
      .match(/'[a-z-]+'/g)!
      .map((q) => q.slice(1, -1));
    expect(listed).toEqual([...SERVICE_NAMES]);
  });
});

describe('subjectMatches', () => {
  it.each([
    ['a.b.c', 'a.b.c', true],
    ['a.*.c', 'a.b.c', true],
    ['a.>', 'a.b.c', true],
    ['a.>', 'a', false],
    ['a.*', 'a.b.c', false],
    ['a.b', 'a.b.c', false],
    ['a.b.c', 'a.b', false],
  ])('%s matches %s: %s', (pattern, subject, expected) => {
    expect(subjectMatches(pattern, subject)).toBe(expected);
  });
});
