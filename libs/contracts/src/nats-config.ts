import { allNatsPermissions, nkeyVariable } from './permissions.js';

/** A user besides the services', with every permission: only test systems add one (libs/testkit). */
export interface ExtraNatsUser {
  /** The environment variable holding its public nkey, e.g. SY_NKEY_TEST_HARNESS. */
  readonly variable: string;
  readonly comment: string;
}

/** Where the committed configuration lives, relative to the repository root. */
export const NATS_CONFIG_PATH = 'infra/nats/nats-server.conf';

const quote = (s: string) => JSON.stringify(s);

function list(name: string, subjects: readonly string[], indent: string): string[] {
  return [`${indent}${name}: {`, `${indent}  allow: [`, ...subjects.map((s) => `${indent}    ${quote(s)}`), `${indent}  ]`, `${indent}}`];
}

/**
 * The nats-server configuration of Switchyard: one nkey user per service with the permissions
 * of `natsPermissions`, no user without a key. Public keys are not in the text: each is
 * `$SY_NKEY_<SERVICE>`, which nats-server reads from its environment. Listen address, port
 * and JetStream store are given on the command line by whoever starts the server.
 */
export function natsServerConfig(opts: { extraUsers?: readonly ExtraNatsUser[] } = {}): string {
  const lines = [
    '# Generated from libs/contracts (catalog.ts, streams.ts, permissions.ts) by `npm run nats:config`.',
    '# Do not edit: tests/nats-config.test.ts fails when this file differs from what the catalog generates.',
    '# Each service connects as its own nkey user; the public keys come from the environment',
    '# ($SY_NKEY_<SERVICE>), see docs/security.md "Service identities on NATS".',
    '# A client without a known key is refused: there is no anonymous user.',
    'authorization {',
    '  users = [',
  ];
  for (const p of allNatsPermissions()) {
    lines.push(
      `    # ${p.service}`,
      '    {',
      `      nkey: $${nkeyVariable(p.service)}`,
      '      permissions: {',
      ...list('publish', p.publish, '        '),
      ...list('subscribe', p.subscribe, '        '),
      "        # answers requests (its endpoints and $SRV discovery) on the requester's reply subject, once each",
      '        allow_responses: true',
      '      }',
      '    }',
    );
  }
  for (const u of opts.extraUsers ?? []) lines.push(`    # ${u.comment}`, `    { nkey: $${u.variable} }`);
  lines.push('  ]', '}', '');
  return lines.join('\n');
}
