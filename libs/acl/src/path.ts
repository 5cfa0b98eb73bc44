import { PolicyError } from './errors.js';

/** A place in a policy document: keys and array indexes from the root. */
export type Segments = readonly (string | number)[];

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `acls[3].dst[0]`, `groups["group:eng"][2]`: how errors and test failures name a place. */
export function formatPath(path: Segments): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (IDENT.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

/** The segments of a path formatPath wrote. */
export function parsePath(path: string): Segments {
  const out: (string | number)[] = [];
  const re = /\.?([A-Za-z_][A-Za-z0-9_]*)|\[([0-9]+)\]|\[("(?:[^"\\]|\\.)*")\]/gy;
  let m: RegExpExecArray | null;
  while (re.lastIndex < path.length && (m = re.exec(path))) {
    if (m[1] !== undefined) out.push(m[1]);
    else if (m[2] !== undefined) out.push(Number(m[2]));
    else out.push(JSON.parse(m[3]!) as string);
  }
  return out;
}

export function fail(path: Segments, reason: string): never {
  throw new PolicyError(formatPath(path), reason);
}
