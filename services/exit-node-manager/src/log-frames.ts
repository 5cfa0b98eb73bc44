/**
 * Splits the body of `GET /containers/{id}/logs` of a container without a TTY into lines.
 * Docker multiplexes stdout and stderr into frames: 1 byte stream (0 stdin, 1 stdout,
 * 2 stderr), 3 zero bytes, a 4-byte big-endian length, then that many bytes.
 */
export function demuxLogLines(body: Buffer): string[] {
  const chunks: Buffer[] = [];
  let offset = 0;
  while (offset + 8 <= body.length) {
    const stream = body[offset]!;
    const size = body.readUInt32BE(offset + 4);
    const framed = stream <= 2 && body[offset + 1] === 0 && body[offset + 2] === 0 && body[offset + 3] === 0;
    if (!framed || offset + 8 + size > body.length) break;
    chunks.push(body.subarray(offset + 8, offset + 8 + size));
    offset += 8 + size;
  }
  // Anything that is not a frame (a TTY container's raw output) is kept as it is.
  if (offset < body.length) chunks.push(body.subarray(offset));
  const text = Buffer.concat(chunks).toString('utf8');
  const lines = text.split('\n').map((l) => l.replace(/\r$/, ''));
  if (lines.at(-1) === '') lines.pop();
  return lines;
}

/**
 * The bytes of log text one `node.req.logs` reply carries at most, counted as JSON-encoded
 * (escapes included): with the envelope it stays well under NATS's 1 MiB message bound,
 * however long the lines a container writes.
 */
export const MAX_LOG_REPLY_BYTES = 512 * 1024;

/**
 * The newest lines, at most `maxLines` of them and `maxBytes` in all. A last line that alone
 * is over the budget is cut to its end, the part written last.
 */
export function newestLines(lines: readonly string[], maxLines: number, maxBytes = MAX_LOG_REPLY_BYTES): string[] {
  const kept: string[] = [];
  let budget = maxBytes - 2; // the brackets of the array
  for (let i = lines.length - 1; i >= 0 && kept.length < maxLines; i--) {
    const line = lines[i]!;
    const cost = Buffer.byteLength(JSON.stringify(line)) + 1;
    if (cost > budget) {
      if (kept.length === 0) kept.push(cutToEnd(line, budget));
      break;
    }
    budget -= cost;
    kept.push(line);
  }
  return kept.reverse();
}

function cutToEnd(line: string, budget: number): string {
  const bytes = Buffer.from(line, 'utf8');
  const tail = (n: number) => bytes.subarray(Math.max(0, bytes.length - n)).toString('utf8');
  // Plain text costs about a byte a byte once JSON-encoded; escapes up to six (\u0000). A cut
  // landing mid-character decodes to one replacement character at the start.
  for (let n = budget - 3; n > 0; n = Math.floor(n / 2)) {
    const cut = tail(n);
    if (Buffer.byteLength(JSON.stringify(cut)) < budget) return cut;
  }
  return '';
}
