/**
 * The warm-path cost of ACL enforcement, side by side in one run: connections per second
 * through the real load balancer to two app pools on the same kind of echo backend, one of a
 * tenant without a policy (the reference), one of a tenant whose policy has 200 rules, every
 * one of them about the pool's tag and only the last one accepting (the most rules a
 * destination can make decide() look at). Rounds alternate between the two ports, each pair
 * back to back; the figure is the median of the pairs' ratios (the machine's load drifts
 * between pairs more than within one). Then, in this process, the cost of one decision of that
 * policy against a bare Map lookup.
 *
 *   npx tsx bench/acl-warm-path.ts [connectionsPerRound=1500] [rounds=9] [lanes=32]
 */
import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { compilePolicy } from '@switchyard/acl';
import { waitForPort } from '@switchyard/testkit';
import { startBackend, startBenchLb } from './support/lb.js';

const perRound = Math.max(200, Math.min(20_000, Number(process.argv[2] ?? 1500)));
const rounds = Math.max(1, Math.min(30, Number(process.argv[3] ?? 9)));
const lanes = Math.max(1, Math.min(256, Number(process.argv[4] ?? 32)));
const RULES = 200;
const TAG = 'tag:bench';

/**
 * 200 rules on the pool's tag: 199 for sources the bench's client is not (10.i.0.0/24) and the
 * last for the client's address, so each connection is decided by the last rule.
 */
export function benchPolicy(): Record<string, unknown> {
  const hosts: Record<string, string> = { 'clients-net': '127.0.0.1/32' };
  const acls: Array<{ action: 'accept'; src: string[]; dst: string[] }> = [];
  for (let i = 0; i < RULES - 1; i++) {
    hosts[`net-${i}`] = `10.${i % 250}.${Math.floor(i / 250)}.0/24`;
    acls.push({ action: 'accept', src: [`net-${i}`], dst: [`${TAG}:${1 + (i % 1000)}`] });
  }
  acls.push({ action: 'accept', src: ['clients-net'], dst: [`${TAG}:*`] });
  return { hosts, tagOwners: { [TAG]: [] }, acls, tests: [{ src: '127.0.0.1', accept: [`${TAG}:443`] }] };
}

/** Opens `total` connections over `lanes` at once, each: connect, one byte out, its echo back, close. Resolves with connections per second. */
async function connectionRate(port: number, total: number): Promise<number> {
  let started = 0;
  let failed = 0;
  const why = new Set<string>();
  const one = () =>
    new Promise<void>((resolve) => {
      const s = connect({ port, host: '127.0.0.1' });
      const timer = setTimeout(() => s.destroy(new Error('timeout')), 10_000);
      s.once('connect', () => s.write('x'));
      s.once('data', () => {
        clearTimeout(timer);
        s.destroy();
        resolve();
      });
      s.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        failed++;
        why.add(err.code ?? err.message);
        resolve();
      });
      s.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  const lane = async () => {
    while (started < total) {
      started++;
      await one();
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: lanes }, lane));
  const ms = performance.now() - t0;
  if (failed) throw new Error(`${failed} of ${total} connections to port ${port} failed: ${[...why].join(', ')}`);
  return (total / ms) * 1000;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** ns per call of `fn` over `n` calls (after a warm-up of the same size). */
function nsPerCall(n: number, fn: (i: number) => unknown): number {
  let sink = 0;
  for (let i = 0; i < n; i++) sink += fn(i) ? 1 : 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) sink += fn(i) ? 1 : 0;
  const ns = Number(process.hrtime.bigint() - t0) / n;
  if (sink < 0) console.log(sink);
  return ns;
}

async function main() {
  const open = randomUUID();
  const guarded = randomUUID();
  const policy = benchPolicy();
  const backends = [await startBackend('echo'), await startBackend('echo')];
  const lb = await startBenchLb(
    backends.map((b) => b.port),
    { LB_WORKERS: '1' },
    {
      tenants: [open, guarded],
      tags: [[TAG], [TAG]],
      prepare: (peer) => void peer.state.policies.push({ tenantId: guarded, version: 1, policy: policy as never }),
    },
  );
  try {
    const [openPort, guardedPort] = lb.ports as [number, number];
    // The app listeners open once the worker has its table, a moment after it is ready.
    await Promise.all([waitForPort(openPort, 10_000), waitForPort(guardedPort, 10_000)]);
    // Warm-up: both listeners open, the JIT warm, the policy compiled and used.
    await connectionRate(openPort, 500);
    await connectionRate(guardedPort, 500);
    const without: number[] = [];
    const withPolicy: number[] = [];
    for (let r = 0; r < rounds; r++) {
      // Alternating which goes first, so neither always follows the other's TIME_WAITs.
      if (r % 2 === 0) {
        without.push(await connectionRate(openPort, perRound));
        withPolicy.push(await connectionRate(guardedPort, perRound));
      } else {
        withPolicy.push(await connectionRate(guardedPort, perRound));
        without.push(await connectionRate(openPort, perRound));
      }
    }
    const a = median(without);
    const b = median(withPolicy);
    const ratios = withPolicy.map((x, i) => x / without[i]!);
    console.log(`acl-warm-path: ${rounds} pairs of rounds of ${perRound} connections, ${lanes} at once, LB_WORKERS=1`);
    console.log(`  no policy:          median ${a.toFixed(0)} conn/s (rounds: ${without.map((x) => x.toFixed(0)).join(', ')})`);
    console.log(`  200-rule policy:    median ${b.toFixed(0)} conn/s (rounds: ${withPolicy.map((x) => x.toFixed(0)).join(', ')})`);
    console.log(`  ratio with / without: median of pairs ${median(ratios).toFixed(3)} (pairs: ${ratios.map((x) => x.toFixed(2)).join(', ')}); of medians ${(b / a).toFixed(3)}`);
  } finally {
    await lb.stop();
    for (const b of backends) b.server.close();
  }

  // The decision itself, in this process: what the data plane adds per connection.
  const compiled = compilePolicy(policy);
  const policies = new Map([[guarded, compiled]]);
  const src = { address: '127.0.0.1' };
  const dst = { tags: [TAG], port: 443 };
  if (!compiled.decide(src, dst).allowed) throw new Error('the bench policy does not accept the bench client');
  const n = 2_000_000;
  const lookup = nsPerCall(n, () => policies.get(guarded));
  const decide = nsPerCall(n, () => policies.get(guarded)!.decide(src, dst).allowed);
  const denied = nsPerCall(n, () => policies.get(guarded)!.decide({ address: '192.0.2.1' }, dst).allowed);
  console.log(
    `  one decision (Map lookup + decide, last of 200 rules): ${decide.toFixed(0)} ns; a default deny: ${denied.toFixed(0)} ns; the Map lookup alone: ${lookup.toFixed(1)} ns`,
  );
}

await main();
process.exit(0);
