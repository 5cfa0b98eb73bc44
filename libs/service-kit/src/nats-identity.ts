import { readFileSync } from 'node:fs';
import { nkeyAuthenticator, nkeys, type Authenticator } from '@nats-io/transport-node';
import { ConfigError } from '@switchyard/config';
import { inboxPrefix, type ServiceName } from '@switchyard/contracts';

export interface NatsIdentityEnv {
  NATS_NKEY_SEED_FILE?: string | undefined;
  NATS_NKEY_SEED?: string | undefined;
}

export interface NatsIdentity {
  /** The public key the server knows the service by (safe to log); undefined without credentials. */
  readonly publicKey: string | undefined;
  /** Connect options: the nkey authenticator and the service's own inbox prefix. */
  readonly options: { authenticator?: Authenticator; inboxPrefix: string };
}

const SEED = /^SU[A-Z2-7]{56}$/;

function seedFromFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new ConfigError([{ variable: 'NATS_NKEY_SEED_FILE', expected: 'a readable file holding a NATS user nkey seed', received: `${path} (${code})` }]);
  }
  // The file may hold the seed alone or a line of its own among comments (as `nk` writes it).
  const seed = text.split(/\s+/).find((word) => SEED.test(word));
  if (!seed) throw new ConfigError([{ variable: 'NATS_NKEY_SEED_FILE', expected: 'a file holding a NATS user nkey seed (SU…)', received: `${path} (no seed in it)` }]);
  return seed;
}

/**
 * The identity a service connects to NATS with: the nkey seed from NATS_NKEY_SEED_FILE or
 * NATS_NKEY_SEED (not both), and always the service's own inbox prefix, which its permissions
 * allow and no other identity's do. Throws a ConfigError naming the variable, never the seed.
 */
export function natsIdentity(service: ServiceName, env: NatsIdentityEnv): NatsIdentity {
  const inbox = inboxPrefix(service);
  if (env.NATS_NKEY_SEED_FILE && env.NATS_NKEY_SEED) {
    throw new ConfigError([
      { variable: 'NATS_NKEY_SEED', expected: 'unset when NATS_NKEY_SEED_FILE is set (one source of the seed)', received: 'a value (not shown)', hidden: true },
    ]);
  }
  const seed = env.NATS_NKEY_SEED_FILE ? seedFromFile(env.NATS_NKEY_SEED_FILE) : env.NATS_NKEY_SEED;
  if (!seed) return { publicKey: undefined, options: { inboxPrefix: inbox } };
  const bytes = new TextEncoder().encode(seed);
  let publicKey: string;
  try {
    publicKey = nkeys.fromSeed(bytes).getPublicKey();
  } catch {
    const variable = env.NATS_NKEY_SEED_FILE ? 'NATS_NKEY_SEED_FILE' : 'NATS_NKEY_SEED';
    throw new ConfigError([{ variable, expected: 'a valid NATS user nkey seed (its checksum failed)', received: 'a seed (not shown)', hidden: true }]);
  }
  return { publicKey, options: { authenticator: nkeyAuthenticator(bytes), inboxPrefix: inbox } };
}
