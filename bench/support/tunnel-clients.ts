// What the tunnel benches share: medians, curl's own timings, and a client that opens a new
// connection every 20 ms so a failover can be timed from the client's side.

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** curl's timings of one GET on a new connection (seconds, bytes/s), run by `exec` (here, or in a namespace). */
export async function curlTimes(exec: (command: string, args: string[]) => Promise<string>, url: string): Promise<{ connect: number; firstByte: number; speed: number }> {
  const out = await exec('curl', ['-sS', '-o', '/dev/null', '--max-time', '60', '-w', '%{time_connect} %{time_starttransfer} %{speed_download}', url]);
  const [connect, firstByte, speed] = out.trim().split(' ').map(Number) as [number, number, number];
  return { connect, firstByte, speed };
}

/**
 * A client (node, `node <file> <host> <port> <ms>`): a new connection every 20 ms for `ms`,
 * printing one JSON line per attempt: when it started and ended, and whether it was answered.
 */
export const PROBING_CLIENT = `
import http from 'node:http';
const [host, port, ms] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const until = Date.now() + ms;
const once = () => new Promise((resolve) => {
  const start = Date.now();
  const req = http.get({ host, port, path: '/', agent: false, timeout: 5000 }, (res) => {
    res.resume();
    res.on('end', () => resolve({ start, end: Date.now(), ok: res.statusCode === 200 }));
  });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', (e) => resolve({ start, end: Date.now(), ok: false, error: e.message }));
});
while (Date.now() < until) {
  console.log(JSON.stringify(await once()));
  await new Promise((r) => setTimeout(r, 20));
}
`;

/** The attempts the probing client printed that started at or after `droppedAt`, summed up. */
export function afterDrop(output: string, droppedAt: number): { opened: number; failed: number; firstServedMs: number | undefined; slowestMs: number } {
  const attempts = output
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { start: number; end: number; ok: boolean })
    .filter((a) => a.start >= droppedAt);
  if (attempts.length === 0) throw new Error('no connection was opened after the drop');
  const first = attempts.find((a) => a.ok);
  return {
    opened: attempts.length,
    failed: attempts.filter((a) => !a.ok).length,
    firstServedMs: first ? first.end - droppedAt : undefined,
    slowestMs: Math.max(...attempts.map((a) => a.end - a.start)),
  };
}

/** The figures of each way against the first ('direct'), one line a way: medians and ratios. */
export function printWays(
  ways: ReadonlyArray<readonly [string, string]>,
  figures: { connect: Map<string, number[]>; firstByte: Map<string, number[]>; speed: Map<string, number[]> },
  width: number,
): void {
  const ref = { connect: median(figures.connect.get('direct')!), firstByte: median(figures.firstByte.get('direct')!), speed: median(figures.speed.get('direct')!) };
  console.log(`  ${'way'.padEnd(width)} connect ms (× direct)   first byte ms (× direct)   bulk MiB/s (× direct)`);
  for (const [way] of ways) {
    const c = median(figures.connect.get(way)!);
    const f = median(figures.firstByte.get(way)!);
    const s = median(figures.speed.get(way)!);
    console.log(
      `  ${way.padEnd(width)} ${c.toFixed(3).padStart(8)} (${(c / ref.connect).toFixed(2)})      ${f.toFixed(3).padStart(8)} (${(f / ref.firstByte).toFixed(2)})         ${(s / 1048576).toFixed(1).padStart(7)} (${(s / ref.speed).toFixed(2)})`,
    );
  }
}
