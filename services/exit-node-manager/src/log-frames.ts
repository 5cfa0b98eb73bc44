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
