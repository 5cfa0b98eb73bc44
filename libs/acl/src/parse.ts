import { PolicyError } from './errors.js';
import type { PolicyDocument } from './types.js';

/** Parses a policy's HuJSON text (comments and trailing commas allowed) into its document. */
export function parsePolicy(text: string): PolicyDocument {
  void text;
  throw new PolicyError('', 'not implemented');
}
