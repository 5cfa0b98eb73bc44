import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, nkeyAuthenticator, nkeys, type ConnectionOptions, type NatsConnection } from '@nats-io/transport-node';
import { inboxPrefix, natsServerConfig, nkeyVariable, SERVICE_NAMES, type ServiceName } from '@switchyard/contracts';
import { freePort, waitForPort } from './net.js';

/** An nkey user of a test server: its seed (in a 0600 file too) and public key. */
export interface NatsIdentityUnderTest {
  readonly publicKey: string;
  readonly seed: string;
  readonly seedFile: string;
}

export interface NatsServer {
  readonly url: string;
  readonly port: number;
  /** The environment that makes a service process connect as itself: its seed file. */
  identityEnv(service: ServiceName): Record<string, string>;
  /** A service's identity on this server, for tests that connect as that service. */
  identity(service: ServiceName): NatsIdentityUnderTest;
  /**
   * A client of the test itself, as the harness user: every permission. This user exists only
   * in test servers (the committed configuration has none), so tests can play any service and
   * read any subject, dead letters included. Closing it is the caller's.
   */
  connect(opts?: Partial<ConnectionOptions>): Promise<NatsConnection>;
  /** What the server logged so far (refused connections and permissions violations among it). */
  log(): string;
  /** A client as the given service's identity (the permissions the service runs with). */
  connectAs(service: ServiceName, opts?: Partial<ConnectionOptions>): Promise<NatsConnection>;
  stop(): Promise<void>;
}

function newIdentity(dir: string, name: string): NatsIdentityUnderTest {
  const user = nkeys.createUser();
  const seed = new TextDecoder().decode(user.getSeed());
  const seedFile = join(dir, `${name}.nk`);
  writeFileSync(seedFile, `${seed}\n`, { mode: 0o600 });
  return { publicKey: user.getPublicKey(), seed, seedFile };
}

/**
 * A NATS server with JetStream of the test's own, on a free loopback port with a throw-away
 * store: tests never touch the streams of a running Switchyard. It runs the generated
 * configuration of infra/nats (natsServerConfig, which tests/nats-config.test.ts holds equal to
 * the committed file) with fresh nkeys for every service, plus the harness user of the test.
 */
export async function startNatsServer(): Promise<NatsServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sy-nats-'));
  const identities = new Map<ServiceName, NatsIdentityUnderTest>(SERVICE_NAMES.map((s) => [s, newIdentity(dir, s)]));
  const harness = newIdentity(dir, 'test-harness');
  const configFile = join(dir, 'nats-server.conf');
  writeFileSync(configFile, natsServerConfig({ extraUsers: [{ variable: nkeyVariable('TEST_HARNESS'), comment: 'the test harness: every permission (test servers only)' }] }));
  // nats-server reads the public keys the configuration names from its environment.
  const keys: Record<string, string> = { [nkeyVariable('TEST_HARNESS')]: harness.publicKey };
  for (const [service, id] of identities) keys[nkeyVariable(service)] = id.publicKey;
  const logFile = join(dir, 'nats-server.log');
  const args = ['-c', configFile, '-a', '127.0.0.1', '-p', String(port), '-js', '-sd', join(dir, 'store'), '-l', logFile];
  const child = spawn(process.env['NATS_SERVER_BIN'] ?? 'nats-server', args, {
    stdio: 'ignore',
    env: { PATH: process.env['PATH'] ?? '', ...keys },
  });
  const exited = once(child, 'exit');
  await waitForPort(port, 10_000);
  const url = `nats://127.0.0.1:${port}`;
  const identity = (service: ServiceName) => identities.get(service)!;
  return {
    url,
    port,
    identityEnv: (service) => ({ NATS_NKEY_SEED_FILE: identity(service).seedFile }),
    identity,
    log: () => {
      try {
        return readFileSync(logFile, 'utf8');
      } catch {
        return '';
      }
    },
    connect: (opts = {}) => connect({ servers: url, authenticator: nkeyAuthenticator(new TextEncoder().encode(harness.seed)), ...opts }),
    connectAs: (service, opts = {}) =>
      connect({ servers: url, authenticator: nkeyAuthenticator(new TextEncoder().encode(identity(service).seed)), inboxPrefix: inboxPrefix(service), ...opts }),
    async stop() {
      if (child.exitCode === null) {
        process.kill(child.pid!, 'SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
