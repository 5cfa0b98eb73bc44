import { PolicyError } from './errors.js';
import type { CompiledPolicy, PolicyTest, TestFailure } from './types.js';

/** Runs a tests block against a compiled policy: every case that did not hold, named. */
export function runPolicyTests(compiled: CompiledPolicy, tests: readonly PolicyTest[] = compiled.tests): TestFailure[] {
  void compiled;
  void tests;
  throw new PolicyError('', 'not implemented');
}
