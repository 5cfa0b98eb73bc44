/**
 * The warm-path cost of ACL enforcement: connections through the real load balancer (one
 * worker) to one app pool on an echo backend, in rounds that alternate between the pool's
 * tenant having a 200-rule policy and having none. Every rule is about the pool's tag and only
 * the last accepts the bench's client, so each connection walks all 200 (the most a destination
 * can make decide() look at). Same port, same backend, same worker: only the policy changes
 * between a pair's two rounds (by acl.evt.changed, as the gateway sends it, and each change is
 * seen in force before a round starts). Without a policy the tenant is one of several the worker
 * knows (another tenant has one), so a connection still asks the book: the reference is a
 * tenant without a policy, not a system without any.
 *
 * Per round: connections per second, and the CPU time the worker spent per connection (the
 * scheduler's nanosecond account, /proc/<pid>/task/<tid>/schedstat). The bench's client and
 * backend share the two cores with the worker, so the rate moves with them; the worker's CPU
 * per connection is the figure that shows the policy's own cost. Each figure is the median of
 * the pairs' ratios. Then, in this process, one decision of that policy against a bare Map
 * lookup.
 *
 * `--control` changes the policy between the same rounds without ever putting one in force
 * (a deletion each time): what the bench reads as a difference where there is none.
 *
 * `--profile` runs the worker under V8's sampling profiler (`--cpu-prof`, every 100 µs) and
 * prints the share of its busy samples (idle left out) inside the ACL check (`admitRoute`, with
 * all it calls): a figure that does not move with the machine's load, where the two ratios do.
 *
 *   npx tsx bench/acl-warm-path.ts [connectionsPerRound=1500] [rounds=15] [lanes=32] [--control] [--profile]
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compilePolicy } from '@switchyard/acl';
import { eventually, waitForPort } from '@switchyard/testkit';
import { cpuNs, lbPids, startBackend, startBenchLb } from './support/lb.js';

const control = process.argv.includes('--control');
const profile = process.argv.includes('--profile');
const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const perRound = Math.max(200, Math.min(20_000, Number(args[0] ?? 1500)));
const rounds = Math.max(1, Math.min(30, Number(args[1] ?? 15)));
const lanes = Math.max(1, Math.min(256, Number(args[2] ?? 32)));
const RULES = 200;
const TAG = 'tag:bench';

/** Where the bench checks that a policy is in force: a loopback address the policy does not accept. */
const OUTSIDER = '127.0.0.2';

/**
 * 200 rules on the pool's tag: 199 for sources the bench's client is not (10.i.0.0/24) and the
 * last for the client's address, so each connection is decided by the last rule.
 */
function benchPolicy(): Record<string, unknown> {
  const hosts: Record<string, string> = { 'clients-net': '127.0.0.1/32' };
  const acls: Array<{ action: 'accept'; src: string[]; dst: string[] }> = [];
  for (let i = 0; i < RULES - 1; i++) {
    hosts[`net-${i}`] = `10.${i % 250}.${Math.floor(i / 250)}.0/24`;
    acls.push({ action: 'accept', src: [`net-${i}`], dst: [`${TAG}:${1 + (i % 1000)}`] });
  }
  acls.push({ action: 'accept', src: ['clients-net'], dst: [`${TAG}:*`] });
  return { hosts, tagOwners: { [TAG]: [] }, acls, tests: [{ src: '127.0.0.1', accept: [`${TAG}:443`] }] };
}

interface Round {
  /** Connections per second. */
  readonly rate: number;
  /** The worker's CPU time per connection, µs. */
  readonly cpuUs: number;
}

/**
 * Opens `total` connections over `lanes` at once, each: connect, one byte out, its echo back,
 * close. Resolves with connections per second and the CPU time `worker` spent per connection.
 */
async function connectionRound(port: number, total: number, worker: readonly number[]): Promise<Round> {
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
  const cpu0 = cpuNs(worker);
  const t0 = performance.now();
  await Promise.all(Array.from({ length: lanes }, lane));
  const ms = performance.now() - t0;
  const cpu = cpuNs(worker) - cpu0;
  if (failed) throw new Error(`${failed} of ${total} connections to port ${port} failed: ${[...why].join(', ')}`);
  return { rate: (total / ms) * 1000, cpuUs: cpu / total / 1000 };
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

/** Whether a connection from OUTSIDER is echoed (no policy in force) or closed unanswered. */
function outsiderAnswered(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1', localAddress: OUTSIDER });
    const done = (answered: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve(answered);
    };
    const timer = setTimeout(() => done(false), 5000);
    s.once('connect', () => s.write('x'));
    s.once('data', () => done(true));
    s.once('error', () => done(false));
    s.once('close', () => done(false));
  });
}

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string }; children?: number[] }>;
  samples: number[];
  timeDeltas: number[];
}

/** The share of a profile's busy time (idle samples left out) spent inside `fn`, with all it calls. */
function shareInside(p: CpuProfile, fn: string): number {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const inside = new Set<number>();
  const mark = (id: number) => {
    inside.add(id);
    for (const c of byId.get(id)!.children ?? []) mark(c);
  };
  for (const n of p.nodes) if (n.callFrame.functionName === fn && !inside.has(n.id)) mark(n.id);
  let busy = 0;
  let within = 0;
  p.samples.forEach((id, i) => {
    if (byId.get(id)!.callFrame.functionName === '(idle)') return;
    const dt = p.timeDeltas[i] ?? 0;
    busy += dt;
    if (inside.has(id)) within += dt;
  });
  return busy === 0 ? 0 : within / busy;
}

async function main() {
  const tenant = randomUUID();
  const bystander = randomUUID();
  const policy = benchPolicy();
  const backend = await startBackend('echo');
  const profileDir = profile ? mkdtempSync(join(tmpdir(), 'acl-warm-path-')) : undefined;
  const lb = await startBenchLb(
    [backend.port],
    { LB_WORKERS: '1' },
    {
      nodeArgs: profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, '--cpu-prof-interval=100'] : [],
      tenants: [tenant],
      tags: [[TAG]],
      // Another tenant's policy keeps the worker's book non-empty, so the reference rounds ask it too.
      prepare: (peer) => void peer.state.policies.push({ tenantId: bystander, version: 1, policy: policy as never }),
    },
  );
  let version = 1;
  /** Puts the tenant's policy in force (or deletes it) and waits until the worker applies it. */
  const setPolicy = async (on: boolean) => {
    version++;
    lb.nc.publish('acl.evt.changed', JSON.stringify({ tenantId: tenant, version, policy: on ? policy : null }));
    await lb.nc.flush();
    await eventually(
      () => outsiderAnswered(port),
      (answered) => answered !== on,
      10_000,
      `the worker ${on ? 'applying' : 'dropping'} the policy`,
      { intervalMs: 20 },
    );
  };
  const port = lb.ports[0]!;
  let worker: number[] = [];
  try {
    await waitForPort(port, 10_000);
    // Only the worker takes connections; the primary supervises.
    worker = lbPids(lb.lb.pid).filter((pid) => pid !== lb.lb.pid);
    if (worker.length !== 1) throw new Error(`expected one load-balancer worker, found ${worker.length}`);
    // Warm-up, a round's worth each way: the JIT warm, the policy compiled and used. (With
    // 500 connections the first measured round still ran 20-40% slow.)
    for (const on of [true, false, true, false]) {
      if (!control) await setPolicy(on);
      await connectionRound(port, perRound, worker);
    }
    const without: Round[] = [];
    const withPolicy: Round[] = [];
    const round = async (on: boolean) => {
      if (control) await setPolicy(false);
      else await setPolicy(on);
      (on ? withPolicy : without).push(await connectionRound(port, perRound, worker));
    };
    for (let r = 0; r < rounds; r++) {
      // Alternating which goes first, so neither always follows the other's TIME_WAITs.
      for (const on of r % 2 === 0 ? [false, true] : [true, false]) await round(on);
    }
    const second = control ? 'no policy (control)' : '200-rule policy';
    const rates = (xs: Round[]) => xs.map((x) => x.rate);
    const cpus = (xs: Round[]) => xs.map((x) => x.cpuUs);
    const rateRatios = withPolicy.map((x, i) => x.rate / without[i]!.rate);
    const cpuRatios = withPolicy.map((x, i) => x.cpuUs / without[i]!.cpuUs);
    const list = (xs: number[], digits: number) => xs.map((x) => x.toFixed(digits)).join(', ');
    console.log(`acl-warm-path: ${rounds} pairs of rounds of ${perRound} connections, ${lanes} at once, LB_WORKERS=1${control ? ', --control' : ''}`);
    console.log(`  no policy:       median ${median(rates(without)).toFixed(0)} conn/s, worker ${median(cpus(without)).toFixed(1)} µs/conn`);
    console.log(`    rounds, conn/s: ${list(rates(without), 0)}; µs/conn: ${list(cpus(without), 1)}`);
    console.log(`  ${second}: median ${median(rates(withPolicy)).toFixed(0)} conn/s, worker ${median(cpus(withPolicy)).toFixed(1)} µs/conn`);
    console.log(`    rounds, conn/s: ${list(rates(withPolicy), 0)}; µs/conn: ${list(cpus(withPolicy), 1)}`);
    console.log(`  rate with / without:          median of pairs ${median(rateRatios).toFixed(3)} (pairs: ${list(rateRatios, 2)})`);
    console.log(`  worker CPU/conn with / without: median of pairs ${median(cpuRatios).toFixed(3)} (pairs: ${list(cpuRatios, 3)})`);
  } finally {
    await lb.stop();
    backend.server.close();
  }
  if (profileDir) {
    // Written by each process as it exits; the worker's file name carries its pid.
    const file = readdirSync(profileDir).find((f) => f.includes(`.${worker[0]}.`));
    if (!file) throw new Error(`no CPU profile of the worker (pid ${worker[0]}) in ${profileDir}`);
    const share = shareInside(JSON.parse(readFileSync(join(profileDir, file), 'utf8')) as CpuProfile, 'admitRoute');
    rmSync(profileDir, { recursive: true });
    console.log(`  profile: the ACL check (admitRoute) took ${(share * 100).toFixed(2)}% of the worker's busy CPU over the run (warm-up included)`);
  }

  // The decision itself, in this process: what the data plane adds per connection.
  const compiled = compilePolicy(policy);
  const policies = new Map([[tenant, compiled]]);
  const src = { address: '127.0.0.1' };
  const dst = { tags: [TAG], port: 443 };
  if (!compiled.decide(src, dst).allowed) throw new Error('the bench policy does not accept the bench client');
  const n = 2_000_000;
  const lookup = nsPerCall(n, () => policies.get(tenant));
  const decide = nsPerCall(n, () => policies.get(tenant)!.decide(src, dst).allowed);
  const denied = nsPerCall(n, () => policies.get(tenant)!.decide({ address: '192.0.2.1' }, dst).allowed);
  console.log(
    `  one decision (Map lookup + decide, last of 200 rules): ${decide.toFixed(0)} ns; a default deny: ${denied.toFixed(0)} ns; the Map lookup alone: ${lookup.toFixed(1)} ns`,
  );
}

await main();
process.exit(0);
