import { catalog, isDurable, type RequestSubject, type Subject } from './catalog.js';
import { CONSUMERS, deadLetterSubject, STREAMS, type ConsumerDef, type StreamName } from './streams.js';
import { SERVICE_NAMES, type ServiceName } from './services.js';

// What each service may do on NATS, derived from the catalog, the streams and the consumers:
// the nats-server configuration in infra/nats/ is rendered from this (nats-config.ts), so a
// subject added to the catalog reaches the server's permissions without anyone listing it.

export interface KvBucketDef {
  /** The one service that reads and writes the bucket. */
  readonly service: ServiceName;
  readonly description: string;
}

/** NATS KV buckets (JetStream streams `KV_<name>`), each private to one service. */
export const KV_BUCKETS = {
  'lb-strategies': { service: 'load-balancer', description: "tenants' default balancing strategies, watched by every load-balancer process" },
} as const satisfies Record<string, KvBucketDef>;
export type KvBucketName = keyof typeof KV_BUCKETS;

/**
 * Where a service's replies arrive (requests, JetStream acks and pulls, KV watches). One
 * prefix per service, so no identity can subscribe to another's replies.
 */
export function inboxPrefix(service: ServiceName): string {
  return `_INBOX.${service}`;
}

/**
 * Why a responder must not answer a request of `subject` on `reply`, or undefined when it may.
 * nats-server lets a responder publish its answer on whatever reply subject the request names
 * (allow_responses overrides its publish permissions), so a requester could aim the answer at
 * `pool.cmd.delete`, or at another service's inbox. An answer goes only under `_INBOX.`, which
 * no catalog subject is, and, when the inbox is a service's, only to a requester of the
 * subject. An inbox that is no service's (the test harness's plain `_INBOX.<id>`) is allowed:
 * no service identity may subscribe to it, and the committed configuration has no other user.
 */
export function replyRefusal(subject: RequestSubject, reply: string | undefined): string | undefined {
  if (!reply) return `a ${subject} request without a reply subject`;
  const tokens = reply.split('.');
  if (tokens[0] !== '_INBOX' || tokens.length < 2) return `reply subject ${reply} is not an inbox (_INBOX.…)`;
  if (tokens.some((t) => t === '' || t === '*' || t === '>')) return `reply subject ${reply} is not a plain subject`;
  const owner = SERVICE_NAMES.find((s) => inboxPrefix(s) === `_INBOX.${tokens[1]}`);
  const requesters = catalog[subject].requesters as readonly ServiceName[];
  if (owner && !requesters.includes(owner)) return `reply subject ${reply} is the inbox of ${owner}, which does not request ${subject}`;
  return undefined;
}

/** The environment variable a nats-server reads a service's public nkey from. */
export function nkeyVariable(service: ServiceName | 'TEST_HARNESS'): string {
  return `SY_NKEY_${service.toUpperCase().replaceAll('-', '_')}`;
}

const subjects = Object.keys(catalog) as Subject[];

/** Subjects the service puts on the bus: commands and events it produces, requests it makes. */
export function subjectsSentBy(service: ServiceName): Subject[] {
  return subjects.filter((s) => {
    const d = catalog[s];
    if (d.type === 'request') return (d.requesters as readonly ServiceName[]).includes(service);
    return (d.producers as readonly ServiceName[]).includes(service);
  });
}

/** Subjects the service takes off the bus: commands it carries out, events it follows, requests it answers. */
export function subjectsReceivedBy(service: ServiceName): Subject[] {
  return subjects.filter((s) => {
    const d = catalog[s];
    if (d.type === 'command') return d.consumer === service;
    if (d.type === 'event') return (d.consumers as readonly ServiceName[]).includes(service);
    return d.responder === service;
  });
}

function streamOf(subject: Subject): StreamName | undefined {
  return (Object.keys(STREAMS) as StreamName[]).find((name) => (STREAMS[name].subjects as readonly string[]).includes(subject));
}

/**
 * The streams a service looks up at start, creating those missing (bus.ensureTopology): those
 * it writes durably, those its consumers read, and the dead letters every service may write.
 * Of these, it brings to their definition only the streams it owns (StreamDef.owner).
 */
export function streamsOf(service: ServiceName): StreamName[] {
  const names = new Set<StreamName>(['DLQ']);
  for (const s of subjectsSentBy(service)) {
    const stream = isDurable(s) ? streamOf(s) : undefined;
    if (stream) names.add(stream);
  }
  for (const c of Object.values(CONSUMERS)) if (c.service === service) names.add(c.stream);
  // Its owner provisions a stream even before it reads it (a command stream with no consumer yet).
  for (const [name, def] of Object.entries(STREAMS)) if (def.owner === service) names.add(name as StreamName);
  return (Object.keys(STREAMS) as StreamName[]).filter((n) => names.has(n));
}

export interface NatsPermissions {
  readonly publish: readonly string[];
  readonly subscribe: readonly string[];
}

const JS_API = '$JS.API';

/**
 * Stream management a service needs: look a stream up and create it when missing; only the
 * stream's owner may change its configuration (an update can add sources, shrink limits or
 * seal it). A create never changes an existing stream: nats-server refuses one whose
 * configuration differs. No delete, no purge.
 */
function streamApi(stream: string, owner: boolean): string[] {
  return [`${JS_API}.STREAM.INFO.${stream}`, `${JS_API}.STREAM.CREATE.${stream}`, ...(owner ? [`${JS_API}.STREAM.UPDATE.${stream}`] : [])];
}

/**
 * A durable pull consumer: create or update it, read it, pull, ack. nats.js creates on a 2.9+
 * server with `CONSUMER.CREATE.<stream>.<durable>[.<filter>]`, and the server refuses a filter
 * in the config that differs from the one in the subject: so the filter is pinned to the
 * definition's (a `>` in it stands for itself in the subject, and matches what it covers).
 */
function durableConsumerApi(c: ConsumerDef): string[] {
  const { stream, durable } = c;
  return [
    `${JS_API}.CONSUMER.INFO.${stream}.${durable}`,
    c.filter ? `${JS_API}.CONSUMER.CREATE.${stream}.${durable}.${c.filter}` : `${JS_API}.CONSUMER.CREATE.${stream}.${durable}`,
    `${JS_API}.CONSUMER.MSG.NEXT.${stream}.${durable}`,
    `$JS.ACK.${stream}.${durable}.>`,
  ];
}

/**
 * A KV bucket of the service's own: its stream, writes to its keys, direct reads, and the
 * ordered consumers a watch makes (and deletes, and answers flow control of).
 */
function kvApi(bucket: string): string[] {
  const stream = `KV_${bucket}`;
  return [
    ...streamApi(stream, true),
    `$KV.${bucket}.>`,
    `${JS_API}.STREAM.MSG.GET.${stream}`,
    `${JS_API}.DIRECT.GET.${stream}`,
    `${JS_API}.DIRECT.GET.${stream}.>`,
    `${JS_API}.CONSUMER.CREATE.${stream}`,
    `${JS_API}.CONSUMER.CREATE.${stream}.>`,
    `${JS_API}.CONSUMER.INFO.${stream}.>`,
    `${JS_API}.CONSUMER.DELETE.${stream}.>`,
    `${JS_API}.CONSUMER.MSG.NEXT.${stream}.>`,
    `$JS.ACK.${stream}.>`,
    `$JS.FC.${stream}.>`,
  ];
}

/**
 * Exactly what a service may publish and subscribe to:
 * - publish the subjects it sends (catalog producers and requesters), and `dlq.<subject>` for
 *   each subject it receives and each command or event it sends (a consumer parks what it
 *   cannot handle; the gateway's outbox parks a row that fails its schema); replies to the
 *   requests it answers go through `allow_responses`, not through this list;
 * - subscribe to the subjects it receives, its own inbox, and the Services API discovery
 *   subjects (`$SRV.PING|INFO|STATS`, all and by its name);
 * - JetStream: account info, its streams (info, create; update only for the stream's owner),
 *   its durable consumers (info, create with the definition's filter, pull, ack), its KV
 *   buckets. Nothing deletes or purges a stream, and nobody reads another service's consumer.
 */
export function natsPermissions(service: ServiceName): NatsPermissions {
  const sent = subjectsSentBy(service);
  const received = subjectsReceivedBy(service);
  const parked = [...received, ...sent.filter((s) => catalog[s].type !== 'request')];
  const deadLetters = [...new Set(parked)].sort().map((s) => deadLetterSubject(s));
  const consumers = Object.values(CONSUMERS).filter((c) => c.service === service);
  const buckets = (Object.keys(KV_BUCKETS) as KvBucketName[]).filter((b) => KV_BUCKETS[b].service === service);
  const publish = [
    ...sent,
    ...deadLetters,
    `${JS_API}.INFO`,
    ...streamsOf(service).flatMap((s) => streamApi(STREAMS[s].name, STREAMS[s].owner === service)),
    ...consumers.flatMap(durableConsumerApi),
    ...buckets.flatMap(kvApi),
  ];
  const subscribe = [
    ...received,
    `${inboxPrefix(service)}.>`,
    ...['PING', 'INFO', 'STATS'].flatMap((verb) => [`$SRV.${verb}`, `$SRV.${verb}.${service}`, `$SRV.${verb}.${service}.*`]),
  ];
  return { publish: [...new Set(publish)], subscribe: [...new Set(subscribe)] };
}

/** Every service's permissions, in SERVICE_NAMES order. */
export function allNatsPermissions(): ReadonlyArray<{ service: ServiceName } & NatsPermissions> {
  return SERVICE_NAMES.map((service) => ({ service, ...natsPermissions(service) }));
}

/** Whether `subject` matches a NATS subject pattern (`*` one token, `>` the rest). */
export function subjectMatches(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i;
    if (i >= s.length || (p[i] !== '*' && p[i] !== s[i])) return false;
  }
  return p.length === s.length;
}
