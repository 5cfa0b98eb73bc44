import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { onJsonLines } from '../src/json-lines.js';

describe('onJsonLines', () => {
  const settle = () => new Promise((resolve) => setImmediate(resolve));
  it('yields each document once, however the chunks split it, and skips lines that are not JSON', async () => {
    const stream = new PassThrough();
    const seen: unknown[] = [];
    onJsonLines(stream, (v) => seen.push(v));
    stream.write('{"a":1}\n{"b"');
    stream.write(':2}\n\nnot json\n{"c":');
    await settle();
    expect(seen).toEqual([{ a: 1 }, { b: 2 }]);
    stream.write('3}\n');
    await settle();
    expect(seen).toEqual([{ a: 1 }, { b: 2 }, { c: 3 }]);
  });

  it('keeps a multi-byte character that two chunks split', async () => {
    const stream = new PassThrough();
    const seen: unknown[] = [];
    onJsonLines(stream, (v) => seen.push(v));
    const bytes = Buffer.from('{"name":"café"}\n');
    const mid = bytes.indexOf(0xc3) + 1;
    stream.write(bytes.subarray(0, mid));
    await settle();
    stream.write(bytes.subarray(mid));
    await settle();
    expect(seen).toEqual([{ name: 'café' }]);
  });
});
