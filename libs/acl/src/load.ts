import { compilePolicy } from './compile.js';
import { PolicyError } from './errors.js';
import { parseText, place } from './parse.js';
import { runPolicyTests } from './tests.js';
import type { CompiledPolicy, CompileOptions, PolicyDocument, TestFailure } from './types.js';

export interface LoadedPolicy {
  readonly document: PolicyDocument;
  readonly compiled: CompiledPolicy;
  /** The document's own tests that failed: a policy with any is refused. */
  readonly failures: readonly TestFailure[];
}

/**
 * Parses, compiles and tests a policy text in one step, as the gateway does on PUT. Throws
 * PolicyError, placed at the line and column of its path in the text; returns the failures
 * of the policy's own tests (the caller refuses the policy when there are any).
 */
export function loadPolicy(text: string, opts: CompileOptions = {}): LoadedPolicy {
  const { tree, document } = parseText(text);
  try {
    const compiled = compilePolicy(document, opts);
    return { document, compiled, failures: runPolicyTests(compiled) };
  } catch (err) {
    throw err instanceof PolicyError ? place(err, text, tree) : err;
  }
}
