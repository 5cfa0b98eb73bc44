import { StringDecoder } from 'node:string_decoder';

/**
 * Calls `onValue` for every newline-delimited JSON document of a Docker stream (events,
 * streaming stats), however the engine splits them into chunks. A line that is not JSON is
 * skipped: both streams carry independent samples, and the next one replaces a lost one.
 */
export function onJsonLines(stream: NodeJS.ReadableStream, onValue: (value: unknown) => void): void {
  let buffered = '';
  // A chunk may end inside a multi-byte character; the decoder holds its first bytes back.
  const decoder = new StringDecoder('utf8');
  stream.on('data', (chunk: Buffer | string) => {
    buffered += typeof chunk === 'string' ? chunk : decoder.write(chunk);
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      if (!line) continue;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        continue;
      }
      onValue(value);
    }
  });
}
