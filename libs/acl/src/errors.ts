/**
 * What is wrong with a policy, and where: `path` as `acls[3].dst[0]` ("" for the whole
 * document), `reason` in words. `line` and `column` (1-based) when the text is known. `kind`
 * says what sort of wrong: `syntax` (not HuJSON), `size` (more text than a policy may have),
 * `invalid` (well-formed, but not a policy this lib accepts).
 */
export class PolicyError extends Error {
  constructor(
    readonly path: string,
    readonly reason: string,
    readonly line?: number,
    readonly column?: number,
    readonly kind: 'syntax' | 'size' | 'invalid' = 'invalid',
  ) {
    super(`${path || 'policy'}${line !== undefined ? ` (line ${line}, column ${column})` : ''}: ${reason}`);
    this.name = 'PolicyError';
  }

  /** The same error, placed at a line and column of the text. */
  at(line: number, column: number): PolicyError {
    return new PolicyError(this.path, this.reason, line, column, this.kind);
  }
}
