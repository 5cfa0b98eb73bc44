import { describe, expect, it } from 'vitest';
import { demuxLogLines, MAX_LOG_REPLY_BYTES, newestLines } from '../src/log-frames.js';

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

describe('newestLines', () => {
  it('keeps the newest lines within the count', () => {
    expect(newestLines(['a', 'b', 'c', 'd'], 2)).toEqual(['c', 'd']);
    expect(newestLines(['a'], 10)).toEqual(['a']);
  });

  it('keeps the newest lines within the bytes, however many were asked for', () => {
    const lines = Array.from({ length: 100 }, (_, i) => `${String(i).padStart(3, '0')}-${'x'.repeat(1000)}`);
    const kept = newestLines(lines, 10_000, 10_000);
    expect(kept.length).toBeGreaterThan(0);
    expect(kept.at(-1)).toBe(lines.at(-1));
    expect(kept).toEqual(lines.slice(-kept.length));
    expect(Buffer.byteLength(JSON.stringify(kept))).toBeLessThanOrEqual(10_000);
    expect(kept.length).toBe(9);
  });

  it('bounds a reply of 10,000 lines of 1 MiB each under the default budget', () => {
    const huge = 'y'.repeat(1024 * 1024);
    const kept = newestLines(
      Array.from({ length: 10_000 }, () => huge),
      10_000,
    );
    expect(kept).toHaveLength(1);
    expect(Buffer.byteLength(JSON.stringify(kept))).toBeLessThanOrEqual(MAX_LOG_REPLY_BYTES);
    expect(kept[0]!.length).toBeGreaterThan(MAX_LOG_REPLY_BYTES / 2);
  });

  it('cuts a line of control characters by its escaped size', () => {
    const kept = newestLines(['\u0001'.repeat(100_000)], 1, 6_000);
    expect(Buffer.byteLength(JSON.stringify(kept))).toBeLessThanOrEqual(6_000);
    expect(kept[0]!.length).toBeGreaterThan(400);
  });
});
