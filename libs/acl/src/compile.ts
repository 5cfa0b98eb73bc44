import { PolicyError } from './errors.js';
import type { CompiledPolicy, CompileOptions } from './types.js';

/** Checks a policy document and compiles it into lookups; throws PolicyError naming the path and reason. */
export function compilePolicy(doc: unknown, opts: CompileOptions = {}): CompiledPolicy {
  void doc;
  void opts;
  throw new PolicyError('', 'not implemented');
}
