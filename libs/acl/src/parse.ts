import { ACL_LIMITS } from '@switchyard/contracts';
import { createScanner, findNodeAtLocation, type Node, type ParseError, parseTree } from 'jsonc-parser';
import { checkDocument } from './document.js';
import { PolicyError } from './errors.js';
import { formatPath, parsePath, type Segments } from './path.js';
import type { PolicyDocument } from './types.js';

// HuJSON (JSON with comments and trailing commas, as Tailscale writes policies) through
// jsonc-parser, which reports each error with its offset. The depth is bounded before the
// tree is built: the parser recurses per level, and 64 KiB of `[` would otherwise go deep.

// jsonc-parser's const enums, by value (isolated modules cannot read ambient const enums).
const OPEN_BRACE = 1;
const CLOSE_BRACE = 2;
const OPEN_BRACKET = 3;
const CLOSE_BRACKET = 4;
const EOF = 17;

/** jsonc-parser's ParseErrorCode values, in words. */
const PARSE_ERRORS: Record<number, string> = {
  1: 'unexpected character',
  2: 'invalid number',
  3: 'a key (a string in double quotes) was expected',
  4: 'a value was expected',
  5: 'a colon was expected',
  6: 'a comma was expected',
  7: 'a closing brace } was expected',
  8: 'a closing bracket ] was expected',
  9: 'the document should end here',
  10: 'invalid comment',
  11: 'a comment is not closed',
  12: 'a string is not closed',
  13: 'a number is not finished',
  14: 'invalid unicode escape',
  15: 'invalid escape character',
  16: 'invalid character in a string',
};

/** 1-based line and column of an offset. */
export function positionAt(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i >= 0 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return { line, column: offset - lineStart + 1 };
}

function errorAt(text: string, offset: number, path: Segments, reason: string, kind: PolicyError['kind'] = 'invalid'): PolicyError {
  const { line, column } = positionAt(text, offset);
  return new PolicyError(formatPath(path), reason, line, column, kind);
}

/** Where a path is in the text: the key of an object member, or the element of a list; its nearest ancestor when absent. */
export function offsetOf(tree: Node, path: Segments): number {
  for (let n = path.length; n >= 0; n--) {
    const node = findNodeAtLocation(tree, [...path.slice(0, n)]);
    if (node) return node.parent?.type === 'property' ? node.parent.offset : node.offset;
  }
  return tree.offset;
}

/** A PolicyError about a path of the document, placed at that path's line and column. */
export function place(err: PolicyError, text: string, tree: Node): PolicyError {
  if (err.line !== undefined) return err;
  const { line, column } = positionAt(text, offsetOf(tree, parsePath(err.path)));
  return err.at(line, column);
}

function toValue(node: Node, path: (string | number)[], text: string): unknown {
  switch (node.type) {
    case 'object': {
      const out: Record<string, unknown> = {};
      for (const prop of node.children ?? []) {
        const [keyNode, valueNode] = prop.children ?? [];
        if (!keyNode || !valueNode) continue;
        const key = keyNode.value as string;
        if (Object.hasOwn(out, key)) throw errorAt(text, keyNode.offset, [...path, key], `duplicate key "${key}"`, 'syntax');
        // defineProperty: `__proto__` is a key like any other, never the prototype.
        Object.defineProperty(out, key, { value: toValue(valueNode, [...path, key], text), enumerable: true, writable: true, configurable: true });
      }
      return out;
    }
    case 'array':
      return (node.children ?? []).map((child, i) => toValue(child, [...path, i], text));
    default:
      return node.value;
  }
}

/** The syntax tree and the checked document of a policy text; PolicyError with line and column. */
export function parseText(text: string): { tree: Node; document: PolicyDocument } {
  const bytes = Buffer.byteLength(text);
  if (bytes > ACL_LIMITS.maxTextBytes) throw new PolicyError('', `the policy is ${bytes} bytes, more than ${ACL_LIMITS.maxTextBytes}`, undefined, undefined, 'size');

  const scanner = createScanner(text, true);
  let depth = 0;
  for (let token = scanner.scan() as number; token !== EOF; token = scanner.scan() as number) {
    if (token === OPEN_BRACE || token === OPEN_BRACKET) {
      if (++depth > ACL_LIMITS.maxDepth) throw errorAt(text, scanner.getTokenOffset(), [], `nested more than ${ACL_LIMITS.maxDepth} levels deep`);
    } else if (token === CLOSE_BRACE || token === CLOSE_BRACKET) {
      // A close before its open would let later opens nest past the bound unnoticed.
      if (--depth < 0) throw errorAt(text, scanner.getTokenOffset(), [], `unbalanced ${text[scanner.getTokenOffset()]}: nothing open to close`, 'syntax');
    }
  }

  const errors: ParseError[] = [];
  const tree = parseTree(text, errors, { allowTrailingComma: true, disallowComments: false, allowEmptyContent: false });
  const first = errors[0];
  if (first) throw errorAt(text, first.offset, [], PARSE_ERRORS[first.error] ?? `syntax error ${first.error}`, 'syntax');
  if (tree?.type !== 'object') throw errorAt(text, tree?.offset ?? 0, [], 'a policy is an object: { "acls": [ ... ] }', tree ? 'invalid' : 'syntax');
  const value = toValue(tree, [], text);
  try {
    return { tree, document: checkDocument(value) };
  } catch (err) {
    throw err instanceof PolicyError ? place(err, text, tree) : err;
  }
}

/**
 * Parses a policy's HuJSON text (comments and trailing commas allowed) and checks its shape:
 * keys, types and bounds. What its names mean (groups defined, tags declared, ports, CIDRs)
 * compilePolicy checks; loadPolicy does both and places every error in the text.
 */
export function parsePolicy(text: string): PolicyDocument {
  return parseText(text).document;
}
