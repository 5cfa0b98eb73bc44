import { describe, expect, it } from 'vitest';
import { demuxLogLines } from '../src/log-frames.js';

function frame(stream: number, text: string): Buffer {
  const payload = Buffer.from(text);
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

describe('demuxLogLines', () => {
  it('joins stdout and stderr frames in order and splits lines', () => {
    const body = Buffer.concat([frame(1, 'one\ntw'), frame(2, 'o\r\nthree\n'), frame(1, 'four\n')]);
    expect(demuxLogLines(body)).toEqual(['one', 'two', 'three', 'four']);
  });

  it('keeps raw output (a TTY container) as it is', () => {
    expect(demuxLogLines(Buffer.from('plain\nlines\n'))).toEqual(['plain', 'lines']);
  });

  it('keeps a truncated last frame instead of dropping it', () => {
    const whole = frame(1, 'complete\n');
    const cut = frame(1, 'cut off here\n').subarray(0, 12);
    expect(demuxLogLines(Buffer.concat([whole, cut]))[0]).toBe('complete');
  });

  it('gives no lines for an empty log', () => {
    expect(demuxLogLines(Buffer.alloc(0))).toEqual([]);
  });
});
