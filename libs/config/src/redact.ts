// Config values that must not reach a terminal or a log: a key, a password, a token, a list
// of users, and the credentials inside a URL (postgres://user:password@host/db).
const SECRET_NAME = /KEY|SECRET|PASSWORD|TOKEN|USERS/i;

/** Whether a variable's name says it holds a secret; its value is then never printed. */
export function isSecretVariable(name: string): boolean {
  // NATS_NKEY_SEED_FILE names where a secret is, not the secret: its path helps an operator.
  return SECRET_NAME.test(name) && !name.endsWith('_FILE');
}

/** The URL with its user and password replaced by `***`, fit for a log line or an error. */
export function redactUrl(value: string): string {
  // On the text rather than through URL.toString(), which would normalise the rest, and so
  // that a value URL cannot parse loses its credentials too.
  // Up to the last '@': a password may hold '/', '?', '#' or '@' itself, and redacting a path
  // with an '@' in it too is the cheaper mistake.
  const masked = value.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/).*@/, '$1***@');
  if (masked !== value) return masked;
  // A mistyped scheme ("nats//user:pw@host") still carries its credentials before the '@'.
  if (!value.includes('://')) return value.replace(/^.*@/, '***@');
  try {
    const parsed = new URL(value);
    if (parsed.username || parsed.password) {
      parsed.username = '***';
      parsed.password = '';
      return parsed.toString();
    }
  } catch {}
  return value;
}
