import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { catalog, CONSUMERS, SERVICE_NAMES, type ServiceName, type Subject } from '@switchyard/contracts';

// The catalog says who sends and who receives each subject; this reads each service's source
// and holds the catalog to it, both ways. A static scan: it needs no NATS, and it sees a subject
// only where a service names it as a '<domain>.<cmd|evt|req>.<verb>' literal (or through a
// durable consumer of its own), which is how every service names them today.

/** Services whose code is not written yet: the catalog describes what they will do. */
const NOT_WRITTEN_YET: ReadonlySet<ServiceName> = new Set(['storage-sync']);

/**
 * Subjects a service sends through a shared protocol of the libs instead of by name: when its
 * source uses the protocol (`uses`) and makes the call (`calls`), it sends the subject.
 */
const THROUGH_LIBS: readonly { uses: RegExp; calls: RegExp; subject: Subject }[] = [
  // service-kit's order reporting: run() fails an order, progress() and fulfil() say so.
  { uses: /\bcreateOrderReporter\(/, calls: /\.run\(/, subject: 'order.evt.failed' },
  { uses: /\bcreateOrderReporter\(/, calls: /\.progress\(/, subject: 'order.evt.progress' },
  { uses: /\bcreateOrderReporter\(/, calls: /\.fulfil\(/, subject: 'order.evt.fulfilled' },
];

const subjects = Object.keys(catalog) as Subject[];
const SUBJECT_LITERAL = /'([a-z]+\.(?:cmd|evt|req)\.[a-z]+)'/g;

function sourceOf(service: ServiceName): string {
  const dir = new URL(`../services/${service}/src/`, import.meta.url);
  const files = readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
  // Comments may quote a subject the code does not use.
  return files.map((f) => withoutComments(readFileSync(new URL(f, dir), 'utf8'))).join('\n');
}

function withoutComments(ts: string): string {
  return ts.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
}

/** Where the catalog puts a service on a subject: sending it, receiving it, or neither. */
function ends(subject: Subject): [senders: readonly ServiceName[], receivers: readonly ServiceName[]] {
  const d = catalog[subject];
  return d.type === 'command' ? [d.producers, [d.consumer]] : d.type === 'event' ? [d.producers, d.consumers] : [d.requesters, [d.responder]];
}

/** What the catalog has a service do with a subject: both, for one whose roles talk to each other (tunnel-manager's edge and agents). */
function rolesOf(service: ServiceName, subject: Subject): Array<'sends' | 'receives'> {
  const [senders, receivers] = ends(subject);
  return [...(senders.includes(service) ? (['sends'] as const) : []), ...(receivers.includes(service) ? (['receives'] as const) : [])];
}

/** The other end of a subject, seen from a service that the catalog puts on it. */
function counterparts(service: ServiceName, subject: Subject): readonly ServiceName[] {
  const [senders, receivers] = ends(subject);
  return [...(senders.includes(service) ? receivers : []), ...(receivers.includes(service) ? senders : [])];
}

interface Usage {
  /** Every catalog subject the service names, plus those its own durable consumers read. */
  readonly named: ReadonlySet<Subject>;
  /** Subjects in a sending position: publish('…'), request('…'), or through THROUGH_LIBS. */
  readonly sent: ReadonlySet<Subject>;
  /** Subjects in a receiving position: subscribe('…'), serve(service, '…'), a consume('<consumer>') of its own. */
  readonly received: ReadonlySet<Subject>;
  /** Durable consumers it reads with consume('<name>') or a ConsumerMap entry. */
  readonly consumers: readonly string[];
}

function usageOf(service: ServiceName): Usage {
  const src = sourceOf(service);
  const named = new Set<Subject>();
  for (const m of src.matchAll(SUBJECT_LITERAL)) {
    const s = m[1]!;
    expect(subjects, `services/${service}/src names '${s}', which is not in the catalog`).toContain(s);
    named.add(s as Subject);
  }
  const inPosition = (re: RegExp) => new Set([...src.matchAll(re)].map((m) => m[1] as Subject));
  const sent = inPosition(/\b(?:publish|request)\(\s*'([a-z]+\.(?:cmd|evt|req)\.[a-z]+)'/g);
  // subscribe('…'), serve(service, '…'), or a key of a handler map: `'pool.evt.changed': async (e) => …`
  // (event maps for ctx.subscribe/follow, consumer and request maps).
  const received = new Set([
    ...inPosition(/\b(?:subscribe\(|serve\(\s*\w+,)\s*'([a-z]+\.(?:cmd|evt|req)\.[a-z]+)'/g),
    ...inPosition(/^\s*'([a-z]+\.(?:cmd|evt|req)\.[a-z]+)':\s*(?:async\s*)?(?:\(|\w+\s*=>|\w+\.|\w+\(|\w+,|\w+$)/gm),
  ]);
  for (const via of THROUGH_LIBS) {
    if (via.uses.test(src) && via.calls.test(src)) {
      named.add(via.subject);
      sent.add(via.subject);
    }
  }
  // bus.consume('<name>', …), or an entry `<name>: { handlers: … }` of a kit ConsumerMap.
  const consumers = [...src.matchAll(/\bconsume\(\s*'(\w+)'|^\s*(\w+): \{ handlers:/gm)].map((m) => (m[1] ?? m[2])!);
  for (const name of consumers) {
    const def = (CONSUMERS as Record<string, { service: ServiceName; subjects: readonly Subject[] }>)[name];
    expect(def, `services/${service}/src consumes '${name}', which is not in CONSUMERS`).toBeDefined();
    for (const s of def!.subjects) {
      named.add(s);
      received.add(s);
    }
  }
  return { named, sent, received, consumers };
}

const written = SERVICE_NAMES.filter((s) => !NOT_WRITTEN_YET.has(s));
const usage = new Map(written.map((s) => [s, usageOf(s)]));

describe('the contracts catalog, against what each service does', () => {
  it.each(written)('%s names only subjects the catalog puts it on', (service) => {
    const strangers = [...usage.get(service)!.named].filter((s) => rolesOf(service, s).length === 0);
    expect(strangers, `${service} uses these, but the catalog lists it as neither sending nor receiving them`).toEqual([]);
  });

  it.each(written)('%s sends what the catalog says it sends, and receives what it says it receives', (service) => {
    const u = usage.get(service)!;
    const wrong = [
      ...[...u.sent].filter((s) => !rolesOf(service, s).includes('sends')).map((s) => `sends ${s}`),
      ...[...u.received].filter((s) => !rolesOf(service, s).includes('receives')).map((s) => `receives ${s}`),
    ];
    expect(wrong, `${service} does these, but the catalog does not list it so`).toEqual([]);
  });

  it.each(written)('%s does everything the catalog says it does', (service) => {
    const u = usage.get(service)!;
    // A conversation whose other end is a service not written yet is a plan, not a lie.
    const claimed = subjects.filter((s) => rolesOf(service, s).length > 0 && !counterparts(service, s).every((c) => NOT_WRITTEN_YET.has(c)));
    const missing = claimed.filter((s) => !u.named.has(s)).map((s) => `${rolesOf(service, s).join(' and ')} ${s}`);
    expect(missing, `the catalog says ${service} does these, but its code never names the subject`).toEqual([]);
  });

  it.each(written)('%s reads only durable consumers of its own', (service) => {
    const foreign = usage.get(service)!.consumers.filter((name) => (CONSUMERS as Record<string, { service: ServiceName }>)[name]!.service !== service);
    expect(foreign).toEqual([]);
  });

  it.each([...NOT_WRITTEN_YET])('%s is still unwritten: once it names a subject, take it off NOT_WRITTEN_YET', (service) => {
    expect([...usageOf(service).named]).toEqual([]);
  });
});
