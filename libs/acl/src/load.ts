import { PolicyError } from './errors.js';
import type { CompiledPolicy, CompileOptions, PolicyDocument, TestFailure } from './types.js';

export interface LoadedPolicy {
  readonly document: PolicyDocument;
  readonly compiled: CompiledPolicy;
  /** The document's own tests that failed: a policy with any is refused. */
  readonly failures: readonly TestFailure[];
}

/**
 * Parses, compiles and tests a policy text in one step, as the gateway does on PUT: a
 * PolicyError from compiling is placed at the line and column of its path in the text.
 */
export function loadPolicy(text: string, opts: CompileOptions = {}): LoadedPolicy {
  void text;
  void opts;
  throw new PolicyError('', 'not implemented');
}
