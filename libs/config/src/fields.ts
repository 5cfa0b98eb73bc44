import Type, { type TBoolean, type TEnum, type TInteger, type TRefine, type TString } from 'typebox';

export interface UrlOptions {
  default?: string;
  description?: string;
}

export interface IntOptions {
  minimum?: number;
  maximum?: number;
  default?: number;
}

export interface StringOptions {
  minLength?: number;
  default?: string;
}

// Schemes read letter by letter ("an H-T-T-P URL") take "an" despite starting with a consonant.
const SPELLED_WITH_AN = /^(https?|s?ftps?|smtps?|ssh|mqtts?|ldaps?|xmpp)$/i;

function article(scheme: string): string {
  return /^[aeiou]/i.test(scheme) || SPELLED_WITH_AN.test(scheme) ? 'an' : 'a';
}

// Protocols may be written as "nats", "nats:" or "nats://".
function schemeOf(protocol: string): string {
  return protocol.replace(/:?(\/\/)?$/, '').toLowerCase();
}

function describeProtocols(protocols: readonly string[]): string {
  const schemes = protocols.map(schemeOf);
  const names = schemes.map((s) => `${s}://`);
  if (names.length === 0) return 'a URL';
  const joined = names.length === 1 ? names[0] : `${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}`;
  return `${article(schemes[0] ?? '')} ${joined} URL`;
}

function hasProtocol(value: string, protocols: readonly string[]): boolean {
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    return false;
  }
  const scheme = parsed.protocol.slice(0, -1).toLowerCase();
  return protocols.length === 0 || protocols.some((p) => schemeOf(p) === scheme);
}

function url(protocols: readonly string[], opts: UrlOptions = {}): TRefine<TString> {
  const base = Type.String({
    description: opts.description ?? describeProtocols(protocols),
    ...(opts.default !== undefined ? { default: opts.default } : {}),
  });
  return Type.Refine(
    base,
    (value: string) => hasProtocol(value, protocols),
    () => `expected ${describeProtocols(protocols)}`,
  );
}

function int(opts: IntOptions = {}): TInteger {
  const { minimum, maximum } = opts;
  const range =
    minimum !== undefined && maximum !== undefined
      ? ` between ${minimum} and ${maximum}`
      : minimum !== undefined
        ? ` >= ${minimum}`
        : maximum !== undefined
          ? ` <= ${maximum}`
          : '';
  return Type.Integer({
    description: `an integer${range}`,
    ...(minimum !== undefined ? { minimum } : {}),
    ...(maximum !== undefined ? { maximum } : {}),
    ...(opts.default !== undefined ? { default: opts.default } : {}),
  });
}

function port(defaultPort?: number): TInteger {
  return Type.Integer({
    description: 'a port number between 1 and 65535',
    minimum: 1,
    maximum: 65535,
    ...(defaultPort !== undefined ? { default: defaultPort } : {}),
  });
}

function bool(defaultValue?: boolean): TBoolean {
  return Type.Boolean({
    description: 'true, false, 1 or 0',
    ...(defaultValue !== undefined ? { default: defaultValue } : {}),
  });
}

function string(opts: StringOptions = {}): TString {
  const minLength = opts.minLength ?? 0;
  return Type.String({
    description: minLength > 0 ? `a string of at least ${minLength} characters` : 'a string',
    ...(minLength > 0 ? { minLength } : {}),
    ...(opts.default !== undefined ? { default: opts.default } : {}),
  });
}

function enumOf<const V extends string[]>(values: readonly [...V], defaultValue?: V[number]): TEnum<V> {
  return Type.Enum(values, {
    description: `one of ${values.join(', ')}`,
    ...(defaultValue !== undefined ? { default: defaultValue } : {}),
  });
}

export { url, int, port, bool, string, enumOf };
