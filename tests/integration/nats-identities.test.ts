import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AckPolicy, jetstreamManager, JetStreamApiError } from '@nats-io/jetstream';
import { Svcm } from '@nats-io/services';
import { AuthorizationError, connect, nkeyAuthenticator, nkeys, PermissionViolationError, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBus } from '@switchyard/bus';
import {
  catalog,
  deadLetterSubject,
  HEADERS,
  inboxPrefix,
  NATS_CONFIG_PATH,
  nkeyVariable,
  SERVICE_NAMES,
  STREAMS,
  subjectsReceivedBy,
  subjectsSentBy,
  type ServiceName,
  type Subject,
} from '@switchyard/contracts';
import { freePort, repoRoot, startNatsServer, startService, waitForPort, type NatsServer } from '@switchyard/testkit';

// A real nats-server running the generated configuration (the testkit's servers all do), each
// service's identity tried against what the catalog says it may and may not do.

const subjects = Object.keys(catalog) as Subject[];

/** The permissions violations the server reported to a client, by operation. */
interface Refusals {
  readonly publish: Set<string>;
  readonly subscription: Set<string>;
}

/**
 * Waits until the server answered everything sent so far, and the client has handed its
 * refusals to the status listeners: the server reports a violation before the flush's PONG,
 * and the listener's loop runs on the next turn.
 */
async function settled(nc: NatsConnection): Promise<void> {
  await nc.flush();
  await new Promise((resolve) => setImmediate(resolve));
}

function refusalsOf(nc: NatsConnection): Refusals {
  const refused: Refusals = { publish: new Set(), subscription: new Set() };
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'error' && s.error instanceof PermissionViolationError) refused[s.error.operation].add(s.error.subject);
    }
  })();
  return refused;
}

describe('NATS identities generated from the catalog', () => {
  let nats: NatsServer;
  let harness: NatsConnection;
  const clients = new Map<ServiceName, { nc: NatsConnection; refused: Refusals }>();
  const as = (service: ServiceName) => clients.get(service)!;
  /** The service's client with the refusals seen so far forgotten. */
  const fresh = (service: ServiceName) => {
    const c = as(service);
    c.refused.publish.clear();
    c.refused.subscription.clear();
    return c;
  };

  beforeAll(async () => {
    nats = await startNatsServer();
    harness = await nats.connect();
    // The streams exist, so a refused publish shows that nothing was stored either.
    await createBus(harness, 'api-gateway').ensureTopology();
    for (const service of SERVICE_NAMES) {
      const nc = await nats.connectAs(service);
      clients.set(service, { nc, refused: refusalsOf(nc) });
    }
  });
  afterAll(async () => {
    for (const { nc } of clients.values()) await nc.close().catch(() => undefined);
    await harness?.close();
    await nats?.stop();
  });

  it('is a configuration nats-server accepts, and one it refuses without the public keys', () => {
    const keys = Object.fromEntries(SERVICE_NAMES.map((s) => [nkeyVariable(s), nkeys.createUser().getPublicKey()]));
    const check = (env: Record<string, string>) =>
      execFileSync('nats-server', ['-t', '-c', join(repoRoot, NATS_CONFIG_PATH)], { env: { PATH: process.env['PATH'] ?? '', ...env }, encoding: 'utf8', stdio: 'pipe' });
    expect(() => check(keys)).not.toThrow();
    expect(() => check({})).toThrow(/SY_NKEY_API_GATEWAY/);
  });

  it('refuses a client without credentials', async () => {
    await expect(connect({ servers: nats.url, maxReconnectAttempts: 0 })).rejects.toBeInstanceOf(AuthorizationError);
  });

  it('refuses a client with a key the configuration does not name', async () => {
    const stranger = nkeys.createUser().getSeed();
    await expect(connect({ servers: nats.url, authenticator: nkeyAuthenticator(stranger), maxReconnectAttempts: 0 })).rejects.toBeInstanceOf(AuthorizationError);
  });

  it('load-balancer cannot create a pool, nor sleep-controller delete one: violations, and the commands go nowhere', async () => {
    const seen: string[] = [];
    const sub = harness.subscribe('>', {
      callback: (_err, m) => {
        seen.push(m.subject);
      },
    });
    await harness.flush();
    const attempts: Array<[ServiceName, Subject, Subject]> = [
      // [who, the forbidden subject, a subject of its own sent after it as a marker]
      ['load-balancer', 'pool.cmd.create', 'lb.evt.connfail'],
      ['sleep-controller', 'pool.cmd.delete', 'sleep.evt.slept'],
    ];
    for (const [service, forbidden, marker] of attempts) {
      const { nc, refused } = fresh(service);
      nc.publish(forbidden, JSON.stringify({ tenantId: '00000000-0000-4000-8000-000000000000', orderId: '00000000-0000-4000-8000-000000000001', name: 'stolen' }));
      nc.publish(marker, '{}');
      await settled(nc);
      expect(refused.publish).toContain(forbidden);
      expect(refused.publish).not.toContain(marker);
    }
    // The markers went through after the forbidden messages, so anything those would have
    // delivered would be here by the time both markers are.
    await harness.flush();
    await expect.poll(() => seen.filter((s) => s === 'lb.evt.connfail' || s === 'sleep.evt.slept').length, { timeout: 5000 }).toBe(2);
    expect(seen).not.toContain('pool.cmd.create');
    expect(seen).not.toContain('pool.cmd.delete');
    const jsm = await jetstreamManager(harness);
    expect((await jsm.streams.info('CMD_EXIT_NODE_MANAGER')).state.messages).toBe(0);
    sub.unsubscribe();
  });

  it.each(SERVICE_NAMES)('%s may publish exactly the catalog subjects it sends, and dead letters of what it handles', async (service) => {
    const { nc, refused } = fresh(service);
    const deadLetters = subjects.map((s) => deadLetterSubject(s));
    for (const s of [...subjects, ...deadLetters]) nc.publish(s, '{}');
    await settled(nc);
    const sent = new Set<string>(subjectsSentBy(service));
    expect([...refused.publish].filter((s) => (subjects as string[]).includes(s)).sort()).toEqual(subjects.filter((s) => !sent.has(s)).sort());
    // It parks what it receives, and commands and events it sends (the gateway's outbox).
    const parks = new Set<string>([...subjectsReceivedBy(service), ...subjectsSentBy(service).filter((s) => catalog[s].type !== 'request')].map((s) => deadLetterSubject(s)));
    expect([...refused.publish].filter((s) => deadLetters.includes(s)).sort()).toEqual(deadLetters.filter((s) => !parks.has(s)).sort());
  });

  it.each(SERVICE_NAMES)('%s may subscribe to exactly the catalog subjects it receives, and to no inbox but its own', async (service) => {
    const { nc } = fresh(service);
    const others = SERVICE_NAMES.filter((s) => s !== service).map((s) => `${inboxPrefix(s)}.>`);
    const tried = [...subjects, '_INBOX.>', ...others, `${inboxPrefix(service)}.probe`];
    const closedBy = new Map<string, unknown>();
    const subs = tried.map((s) => {
      const sub = nc.subscribe(s);
      void sub.closed.then((err) => err && closedBy.set(s, err));
      return sub;
    });
    await settled(nc);
    const received = new Set<string>(subjectsReceivedBy(service));
    const expected = tried.filter((s) => !received.has(s) && s !== `${inboxPrefix(service)}.probe`);
    expect([...closedBy.keys()].sort()).toEqual(expected.sort());
    for (const err of closedBy.values()) expect(err).toBeInstanceOf(PermissionViolationError);
    for (const sub of subs) if (!sub.isClosed()) sub.unsubscribe();
  });

  it.each(SERVICE_NAMES)('%s receives what it consumes from the harness, and answers the requests it serves', async (service) => {
    const { nc, refused } = fresh(service);
    for (const s of subjectsReceivedBy(service)) {
      const def = catalog[s];
      if (def.type === 'request') {
        const sub = nc.subscribe(s, {
          callback: (_err, m) => {
            m.respond(`reply to ${s}`);
          },
        });
        await nc.flush();
        // Each requester of the catalog gets the answer, through its own inbox.
        for (const requester of def.requesters) {
          const reply = await as(requester).nc.request(s, '{}', { timeout: 5000 });
          expect(reply.string()).toBe(`reply to ${s}`);
        }
        sub.unsubscribe();
      } else {
        const sub = nc.subscribe(s, { max: 1 });
        await nc.flush();
        harness.publish(s, `for ${service}`);
        for await (const m of sub) expect(m.string()).toBe(`for ${service}`);
      }
    }
    await settled(nc);
    expect([...refused.publish, ...refused.subscription]).toEqual([]);
  });

  it.each(SERVICE_NAMES)('%s sets up its own streams and consumers, and no other service’s', async (service) => {
    const { nc, refused } = fresh(service);
    await createBus(nc, service).ensureTopology();
    await settled(nc);
    expect([...refused.publish]).toEqual([]);
    // Reading, deleting or purging what is not its own is refused.
    const foreign = ['$JS.API.STREAM.DELETE.EVT', '$JS.API.STREAM.PURGE.DLQ', '$JS.API.CONSUMER.MSG.NEXT.CMD_EXIT_NODE_MANAGER.exit-node-manager-commands'];
    if (service === 'exit-node-manager') foreign.pop();
    for (const s of foreign) nc.publish(s, '{}');
    await settled(nc);
    expect([...refused.publish].sort()).toEqual([...foreign].sort());
  });

  it('lets only its owner update a stream: a non-owner adding sources or changing limits is refused', async () => {
    const jsm = await jetstreamManager(harness);
    const before = (await jsm.streams.info('CMD_EXIT_NODE_MANAGER')).config;
    const attempts: Array<[ServiceName, string, Record<string, unknown>]> = [
      ['socket-activator', 'CMD_EXIT_NODE_MANAGER', { sources: [{ name: 'EVT' }] }],
      ['sleep-controller', 'CMD_EXIT_NODE_MANAGER', { max_msgs: 1 }],
      ['health-monitor', 'EVT', { max_age: 1_000_000_000 }],
      ['exit-node-manager', 'DLQ', { max_msgs: 1 }],
    ];
    for (const [service, stream, change] of attempts) {
      const { nc, refused } = fresh(service);
      const theirs = await jetstreamManager(nc, { timeout: 2000 });
      await expect(theirs.streams.update(stream, change)).rejects.toThrow();
      await settled(nc);
      expect(refused.publish).toContain(`$JS.API.STREAM.UPDATE.${stream}`);
    }
    const after = (await jsm.streams.info('CMD_EXIT_NODE_MANAGER')).config;
    expect(after.sources).toBeUndefined();
    expect(after.max_msgs).toBe(-1);
    expect(after).toEqual(before);
    expect((await jsm.streams.info('EVT')).config.max_age).toBe(STREAMS.EVT.maxAgeMs * 1_000_000);
    expect((await jsm.streams.info('DLQ')).config.max_msgs).toBe(-1);

    // The owner may, and its next start brings the stream back to the definition.
    const { nc, refused } = fresh('exit-node-manager');
    const owner = await jetstreamManager(nc);
    expect((await owner.streams.update('CMD_EXIT_NODE_MANAGER', { max_msgs: 1000 })).config.max_msgs).toBe(1000);
    await createBus(nc, 'exit-node-manager').ensureTopology();
    await settled(nc);
    expect(refused.publish.size).toBe(0);
    expect((await jsm.streams.info('CMD_EXIT_NODE_MANAGER')).config).toEqual(before);
  });

  it('refuses (nats-server 2.9) a create of an existing stream with another configuration, so a non-owner cannot change it that way', async () => {
    const jsm = await jetstreamManager(harness);
    const before = (await jsm.streams.info('CMD_EXIT_NODE_MANAGER')).config;
    const { nc, refused } = fresh('socket-activator');
    const theirs = await jetstreamManager(nc);
    for (const change of [{ sources: [{ name: 'EVT' }] }, { max_msgs: 1 }, { subjects: ['node.cmd.wake'] }]) {
      const err = await theirs.streams.add({ ...before, ...change }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(JetStreamApiError);
      expect((err as JetStreamApiError).code).toBe(10058);
    }
    await settled(nc);
    expect(refused.publish.size).toBe(0);
    expect((await jsm.streams.info('CMD_EXIT_NODE_MANAGER')).config).toEqual(before);
  });

  it("creates a durable consumer only with the definition's filter", async () => {
    const attempts: Array<[ServiceName, string, string, string]> = [
      // [who, stream, its own durable, a filter other than its definition's]
      ['api-gateway', 'EVT', 'api-gateway-orders', 'pool.evt.>'],
      ['exit-node-manager', 'CMD_EXIT_NODE_MANAGER', 'exit-node-manager-commands', 'pool.cmd.delete'],
    ];
    for (const [service, stream, durable, filter] of attempts) {
      const { nc, refused } = fresh(service);
      const theirs = await jetstreamManager(nc, { timeout: 2000 });
      await expect(theirs.consumers.add(stream, { durable_name: durable, filter_subject: filter, ack_policy: AckPolicy.Explicit })).rejects.toThrow();
      await settled(nc);
      expect(refused.publish).toContain(`$JS.API.CONSUMER.CREATE.${stream}.${durable}.${filter}`);
    }
    const jsm = await jetstreamManager(harness);
    expect((await jsm.consumers.info('EVT', 'api-gateway-orders')).config.filter_subject).toBe('order.evt.>');
  });

  it("answers a request only on an inbox: a reply subject aimed at a command (or a non-requester's inbox) gets no answer and a dead letter", async () => {
    const responderNc = as('health-monitor').nc;
    const responder = createBus(responderNc, 'health-monitor');
    const group = await new Svcm(responderNc).add({ name: 'health-monitor', version: '0.0.0' });
    responder.serve(group, 'health.req.status', async () => ({ nodes: [] }));
    const jsm = await jetstreamManager(harness);
    const commandsBefore = (await jsm.streams.info('CMD_EXIT_NODE_MANAGER')).state.messages;
    const seen: string[] = [];
    const sub = harness.subscribe('pool.cmd.delete', { callback: (_e, m) => void seen.push(m.subject) });
    const inboxSub = harness.subscribe(`${inboxPrefix('exit-node-manager')}.>`, { callback: (_e, m) => void seen.push(m.subject) });
    await harness.flush();

    // A requester of the catalog is answered, through its own inbox.
    await expect(createBus(as('load-balancer').nc, 'load-balancer').request('health.req.status', {})).resolves.toEqual({ nodes: [] });

    const { nc, refused } = fresh('load-balancer');
    const lastDeadLetter = async () =>
      (await jsm.streams.getMessage('DLQ', { last_by_subj: deadLetterSubject('health.req.status') }).catch(() => null))?.header.get(HEADERS.deadLetterReason) ?? '';
    const relays = ['pool.cmd.delete', `${inboxPrefix('exit-node-manager')}.stolen`];
    for (const [i, reply] of relays.entries()) {
      nc.publish('health.req.status', JSON.stringify({}), { reply });
      await settled(nc);
      // The dead letter is written once the responder decided not to answer: no answer follows it.
      await expect.poll(lastDeadLetter, { timeout: 5000 }).toContain(`reply subject ${reply} `);
      expect(responder.handlerErrors()['health.req.status']).toBe(i + 1);
    }
    expect(refused.publish.size).toBe(0);
    await harness.flush();
    expect(seen).toEqual([]);
    expect((await jsm.streams.info('CMD_EXIT_NODE_MANAGER')).state.messages).toBe(commandsBefore);
    sub.unsubscribe();
    inboxSub.unsubscribe();
    await group.stop();
  });
});

describe('streams of a fresh server, whatever order the services start in', () => {
  let nats: NatsServer;
  beforeAll(async () => {
    nats = await startNatsServer();
  });
  afterAll(async () => {
    await nats?.stop();
  });

  it('a non-owner creates what is missing, and the owner that starts later brings a tampered stream back to its definition', async () => {
    const clients: NatsConnection[] = [];
    const connect = async (service: ServiceName) => {
      const nc = await nats.connectAs(service);
      clients.push(nc);
      return { nc, refused: refusalsOf(nc) };
    };
    const monitor = await connect('health-monitor');
    await createBus(monitor.nc, 'health-monitor').ensureTopology();
    // socket-activator, taken over, creates the missing command stream of exit-node-manager its own way.
    const activator = await connect('socket-activator');
    await (await jetstreamManager(activator.nc)).streams.add({
      ...STREAMS.CMD_EXIT_NODE_MANAGER,
      subjects: [...STREAMS.CMD_EXIT_NODE_MANAGER.subjects],
      max_msgs: 1,
      sources: [{ name: 'EVT' }],
    });
    await createBus(activator.nc, 'socket-activator').ensureTopology();
    for (const service of ['exit-node-manager', 'sleep-controller', 'api-gateway'] as const) {
      const { nc } = await connect(service);
      await createBus(nc, service).ensureTopology();
    }
    for (const c of clients) await settled(c);
    const jsm = await jetstreamManager(clients.at(-1)!);
    const cmd = (await jsm.streams.info('CMD_EXIT_NODE_MANAGER')).config;
    expect(cmd.sources).toBeUndefined();
    expect(cmd.max_msgs).toBe(-1);
    expect(cmd.subjects).toEqual([...STREAMS.CMD_EXIT_NODE_MANAGER.subjects]);
    expect(monitor.refused.publish.size + activator.refused.publish.size).toBe(0);
    expect(nats.log()).not.toMatch(/Violation/);
    for (const c of clients) await c.close();
  });
});

describe('a service process and its NATS identity', () => {
  let nats: NatsServer;
  beforeAll(async () => {
    nats = await startNatsServer();
  });
  afterAll(async () => {
    await nats?.stop();
  });

  it('starts as itself and logs its public key, never its seed', async () => {
    const p = startService('tunnel-manager', { NATS_URL: nats.url, ...nats.identityEnv('tunnel-manager') });
    await p.waitForLog(/"msg":"ready"/);
    await p.stop();
    const id = nats.identity('tunnel-manager');
    expect(p.output()).toContain(id.publicKey);
    expect(p.output()).not.toContain(id.seed);
  });

  it('exits 78 naming the refusal when the server does not know its key, without printing the seed', async () => {
    const stranger = new TextDecoder().decode(nkeys.createUser().getSeed());
    const dir = mkdtempSync(join(tmpdir(), 'sy-stranger-'));
    const file = join(dir, 'stranger.nk');
    writeFileSync(file, `${stranger}\n`, { mode: 0o600 });
    const p = startService('tunnel-manager', { NATS_URL: nats.url, NATS_NKEY_SEED_FILE: file });
    const { code } = await p.exited;
    expect(code).toBe(78);
    expect(p.output()).toMatch(/NATS refused this identity/);
    expect(p.output()).not.toContain(stranger);
    rmSync(dir, { recursive: true, force: true });
  });

  it('exits 78 naming the variable when the seed is not one, without printing it', async () => {
    const bad = `SU${'A'.repeat(56)}`;
    const p = startService('tunnel-manager', { NATS_URL: nats.url, NATS_NKEY_SEED: bad });
    const { code } = await p.exited;
    expect(code).toBe(78);
    expect(p.output()).toMatch(/NATS_NKEY_SEED: expected a valid NATS user nkey seed/);
    expect(p.output()).not.toContain(bad);
  });
});

describe('the NATS of `npm start`: the committed configuration and the seeds infra/nats/identities.mjs keeps', () => {
  let dir: string;
  let server: ReturnType<typeof spawn> | undefined;
  afterAll(async () => {
    if (server && server.exitCode === null) {
      process.kill(server.pid!, 'SIGTERM');
      await once(server, 'exit');
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('lets each service in as itself with its seed file, keeps the seeds across runs, and refuses anyone else', async () => {
    dir = mkdtempSync(join(tmpdir(), 'sy-start-nats-'));
    const seeds = join(dir, 'nats');
    const script = () => execFileSync(process.execPath, ['infra/nats/identities.mjs', 'seeds', seeds], { cwd: repoRoot, encoding: 'utf8' });
    const exports = script();
    expect(script()).toBe(exports);
    const keys = Object.fromEntries([...exports.matchAll(/^export (SY_NKEY_\w+)=(U[A-Z2-7]{55})$/gm)].map((m) => [m[1]!, m[2]!]));
    expect(Object.keys(keys)).toEqual(SERVICE_NAMES.map((s) => nkeyVariable(s)));
    for (const s of SERVICE_NAMES) expect(statSync(join(seeds, `${s}.nk`)).mode & 0o777).toBe(0o600);

    const port = await freePort();
    server = spawn('nats-server', ['-c', join(repoRoot, NATS_CONFIG_PATH), '-a', '127.0.0.1', '-p', String(port), '-js', '-sd', join(dir, 'store')], {
      stdio: 'ignore',
      env: { PATH: process.env['PATH'] ?? '', ...keys },
    });
    await waitForPort(port, 10_000);
    const url = `nats://127.0.0.1:${port}`;
    const p = startService('storage-sync', { NATS_URL: url, NATS_NKEY_SEED_FILE: join(seeds, 'storage-sync.nk') });
    await p.waitForLog(/"msg":"ready"/);
    expect(p.output()).toContain(keys[nkeyVariable('storage-sync')]);
    await p.stop();
    await expect(connect({ servers: url, maxReconnectAttempts: 0 })).rejects.toBeInstanceOf(AuthorizationError);
  });
});
