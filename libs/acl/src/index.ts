export { PolicyError } from './errors.js';
export { parsePolicy } from './parse.js';
export { compilePolicy } from './compile.js';
export { runPolicyTests } from './tests.js';
export { loadPolicy } from './load.js';
export type { LoadedPolicy } from './load.js';
export type { CompiledPolicy, CompileOptions, ConnectionDestination, ConnectionSource, Decision, PolicyDocument, PolicyRule, PolicyTest, TestFailure } from './types.js';
