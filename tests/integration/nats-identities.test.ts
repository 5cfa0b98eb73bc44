import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { AuthorizationError, connect, nkeyAuthenticator, nkeys, PermissionViolationError, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBus } from '@switchyard/bus';
import {
  catalog,
  deadLetterSubject,
  inboxPrefix,
  NATS_CONFIG_PATH,
  nkeyVariable,
  SERVICE_NAMES,
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
