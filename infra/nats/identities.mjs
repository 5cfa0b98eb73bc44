#!/usr/bin/env node
// The services' NATS identities (docs/security.md, "Service identities on NATS"): an nkey per
// service, generated on first use and kept, never committed. Plain node (no build, no tsx), so
// a deployment host runs it too.
//
//   node infra/nats/identities.mjs seeds <dir>
//     keeps <dir>/<service>.nk (mode 0600, one seed each; a missing one is generated) and prints
//     `export SY_NKEY_<SERVICE>=<public key>` lines for the nats-server (infra/start.sh evals them).
//   node infra/nats/identities.mjs env-file <file>
//     adds to the env file (created mode 0600) what is missing of SY_NKEY_<SERVICE> (public key,
//     read by the nats container) and SY_NKEY_SEED_<SERVICE> (seed, read by the service's
//     container): docker-compose reads `.env` for both.
//
// To rotate a service's key, delete its seed file (or its two lines), run this again and
// restart nats-server and that service.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nkeys } from '@nats-io/transport-node';

// The services of libs/contracts (SERVICE_NAMES); tests/nats-config.test.ts holds the two equal.
export const SERVICES = ['api-gateway', 'exit-node-manager', 'health-monitor', 'load-balancer', 'sleep-controller', 'socket-activator', 'tunnel-manager', 'storage-sync'];

const SEED = /^SU[A-Z2-7]{56}$/;
const variable = (service, infix = '') => `SY_NKEY_${infix}${service.toUpperCase().replaceAll('-', '_')}`;
const publicKeyOf = (seed) => nkeys.fromSeed(new TextEncoder().encode(seed)).getPublicKey();
const newSeed = () => new TextDecoder().decode(nkeys.createUser().getSeed());

function seeds(dir) {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const lines = [];
  for (const service of SERVICES) {
    const file = join(dir, `${service}.nk`);
    if (!existsSync(file)) writeFileSync(file, `${newSeed()}\n`, { mode: 0o600 });
    const seed = readFileSync(file, 'utf8')
      .split(/\s+/)
      .find((w) => SEED.test(w));
    if (!seed) throw new Error(`${file} holds no user nkey seed: delete it to generate a new one`);
    lines.push(`export ${variable(service)}=${publicKeyOf(seed)}`);
  }
  return lines.join('\n');
}

function envFile(file) {
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const present = new Set([...text.matchAll(/^\s*([A-Z0-9_]+)=/gm)].map((m) => m[1]));
  const added = [];
  for (const service of SERVICES) {
    if (present.has(variable(service)) && present.has(variable(service, 'SEED_'))) continue;
    if (present.has(variable(service)) || present.has(variable(service, 'SEED_'))) {
      throw new Error(`${file} has only one of ${variable(service)} and ${variable(service, 'SEED_')}: remove it to generate both`);
    }
    const seed = newSeed();
    added.push(`${variable(service)}=${publicKeyOf(seed)}`, `${variable(service, 'SEED_')}=${seed}`);
  }
  if (added.length === 0) return;
  const separator = text === '' || text.endsWith('\n') ? '' : '\n';
  writeFileSync(file, `${text}${separator}# NATS identities (infra/nats/identities.mjs)\n${added.join('\n')}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
}

const [command, target] = process.argv.slice(2);
if (command === 'seeds' && target) console.log(seeds(target));
else if (command === 'env-file' && target) envFile(target);
else {
  console.error('usage: node infra/nats/identities.mjs seeds <dir> | env-file <file>');
  process.exit(64);
}
