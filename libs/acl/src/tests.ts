import { Compiled, readTestDestination, readTestSource } from './compile.js';
import { checkDocument } from './document.js';
import type { CompiledPolicy, PolicyTest, TestFailure } from './types.js';

/**
 * Runs a tests block (the policy's own unless `tests` is given) against a compiled policy and
 * names every case that did not hold. The gate: a policy with any failure is refused. A block
 * given here is checked as the document's would be (PolicyError on a case that names nothing).
 */
export function runPolicyTests(compiled: CompiledPolicy, tests: readonly PolicyTest[] = compiled.tests): TestFailure[] {
  if (!(compiled instanceof Compiled)) throw new TypeError('runPolicyTests needs a policy from compilePolicy');
  const block = tests === compiled.tests ? tests : (checkDocument({ tests }).tests ?? []);
  const failures: TestFailure[] = [];
  block.forEach((test, t) => {
    const src = readTestSource(compiled, test.src, ['tests', t, 'src']);
    const run = (expected: 'accept' | 'deny', cases: readonly string[] | undefined) =>
      cases?.forEach((dstText, i) => {
        const decision = compiled.decide(src, readTestDestination(compiled, dstText, ['tests', t, expected, i]));
        if (decision.allowed === (expected === 'accept')) return;
        const path = `tests[${t}].${expected}[${i}]`;
        const what = `${JSON.stringify(dstText)} from ${JSON.stringify(test.src)}`;
        const message = expected === 'deny' ? `${path}: ${what} was accepted by acls[${decision.rule}]` : `${path}: ${what} was denied (no rule accepts it)`;
        failures.push({ path, src: test.src, dst: dstText, expected, rule: decision.rule, message });
      });
    run('accept', test.accept);
    run('deny', test.deny);
  });
  return failures;
}
