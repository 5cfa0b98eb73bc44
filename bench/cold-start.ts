/**
 * Cold start and warm path of scale to zero, with the http-app image on the bridge network
 * (its port published on 127.0.0.1 by Docker), everything measured in one run:
 *   (a) bare Docker: `docker start` of a stopped twin of the node's container (same image, env,
 *       init, one published port) until the first complete HTTP response, polling connect+GET
 *       every 10 ms; once polling from the start call, once polling only after it returned;
 *   (b) cold start through the activator: a node asleep, a client connects to its port, until
 *       the complete HTTP response, in nftables mode (and in proxy mode);
 *   (c) the warm path, per request on a new connection: direct to the node's port with no
 *       activator table, the same port after a wake in nftables mode (table present, port out
 *       of the set) in blocks ordered T N N T ..., and proxy mode through the activator's public port
 *       alternating request by request with direct ones.
 * Rounds of (a) and (b) alternate so both see the same machine.
 *
 *   npx tsx bench/cold-start.ts [wakes=20] [warm requests=2000]
 *
 * Uses its own NATS servers and databases and the local Docker engine, like the integration
 * tests (images from `bash infra/images/build.sh`); removes every container and nftables table
 * it made.
 */
import { execFile } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { eventually, HTTP_APP_IMAGE, HTTP_APP_PORT, freePort, httpGet, startScaleToZero, docker, type ScaleToZero } from '@switchyard/testkit';

const wakes = Math.max(20, Math.min(200, Number(process.argv[2] ?? 20)));
const warmRequests = Math.max(100, Math.min(20_000, Number(process.argv[3] ?? 2000)));
const run = promisify(execFile);

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const median = (xs: number[]) => {
  const s = sorted(xs);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const p95 = (xs: number[]) => sorted(xs)[Math.min(xs.length - 1, Math.ceil(xs.length * 0.95) - 1)]!;
const fmt = (ms: number, digits = 0) => `${ms.toFixed(digits).padStart(7)} ms`;
const row = (label: string, xs: number[], digits = 0) => console.log(`${label.padEnd(62)} ${fmt(median(xs), digits)} ${fmt(p95(xs), digits)}`);

/** Connect+GET attempts 10 ms apart, each on a new connection, until one answers 200 in full. */
async function pollUntilAnswered(port: number, timeoutMs: number): Promise<void> {
  // Bounds each attempt as well as the whole wait.
  const deadline = Date.now() + timeoutMs;
  const attempt = () => httpGet(port, '/', Math.max(1, deadline - Date.now())).catch(() => undefined);
  await eventually(attempt, (res) => res?.status === 200, timeoutMs, `an answer on ${port}`, { intervalMs: 10 });
}

/** One request after another, each on a new connection: the latency of each, in ms. */
async function sequentialGets(port: number, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const res = await httpGet(port, '/', 5_000);
    if (res.status !== 200) throw new Error(`warm request answered ${res.status}`);
    out.push(res.ms);
  }
  return out;
}

/** A stopped copy of a node's container with its own published port, not managed by Switchyard. */
async function bareTwin(containerId: string) {
  const info = await docker.getContainer(containerId).inspect();
  const port = await freePort();
  const twin = await docker.createContainer({
    name: `sy-bench-bare-${process.pid}`,
    Image: info.Config.Image,
    Env: info.Config.Env,
    Labels: { 'io.switchyard.bench': 'cold-start' },
    ExposedPorts: { [`${HTTP_APP_PORT}/tcp`]: {} },
    HostConfig: {
      Init: info.HostConfig.Init ?? true,
      RestartPolicy: { Name: 'no' },
      PortBindings: { [`${HTTP_APP_PORT}/tcp`]: [{ HostIp: '127.0.0.1', HostPort: String(port) }] },
    },
  });
  return { twin, port };
}

/** Puts the node to sleep and lets the stop settle, then times one client GET until its full answer. */
async function coldRequest(s: ScaleToZero, nodeId: string, port: number) {
  await s.sleepNow(nodeId);
  await sleep(300);
  const since = Date.now();
  const t0 = performance.now();
  // A failed cold request is counted and shown, not retried: that is what its client would see.
  const error = await httpGet(port, '/', 15_000).then(
    (res) => (res.status === 200 ? undefined : `answered ${res.status}`),
    (err: unknown) => (err as Error).message,
  );
  const ms = performance.now() - t0;
  const woke = await s.watch.next((m) => m.subject === 'activator.evt.woke' && m.data.nodeId === nodeId && m.at >= since, 10_000);
  await s.waitForCatch(nodeId, 'awake', 5_000);
  // Until the node answers, the next round's sleep would stop a node that is still starting.
  await pollUntilAnswered(port, 10_000);
  return { ms, error, readyMs: woke.data.readyMs as number, firstByteMs: woke.data.firstByteMs as number };
}

type Cold = Awaited<ReturnType<typeof coldRequest>>;
/** Rows of the answered cold requests, and a line for the failed ones. */
function coldRows(label: string, cold: Cold[]) {
  const ok = cold.filter((c) => !c.error);
  if (ok.length > 0) {
    row(
      label,
      ok.map((c) => c.ms),
    );
    row(
      '    first catch → node ready (activator.evt.woke readyMs)',
      ok.map((c) => c.readyMs),
    );
    row(
      '    first catch → first byte forwarded (firstByteMs)',
      ok.map((c) => c.firstByteMs),
    );
  }
  const failed = cold.filter((c) => c.error);
  if (failed.length > 0) {
    console.log(`    FAILED cold requests: ${failed.length} of ${cold.length}: ${[...new Set(failed.map((c) => c.error))].join('; ')}`);
  }
}

async function nftablesPhase() {
  const s = await startScaleToZero('nftables');
  let twin: Awaited<ReturnType<typeof bareTwin>>['twin'] | undefined;
  try {
    const { poolId, nodeIds } = await s.createAppPool({ name: 'bench', image: HTTP_APP_IMAGE, containerPort: HTTP_APP_PORT });
    const nodeId = nodeIds[0]!;
    const node = (await s.node(nodeId))!;
    const port = node.ports[0]!.hostPort;
    await pollUntilAnswered(port, 10_000);
    const policy = await s.setSleepPolicy(poolId, { enabled: true, idleWindowSec: 3600 });
    if (policy.status !== 202) throw new Error(`sleep policy refused: ${JSON.stringify(policy.body)}`);

    const bare = await bareTwin(node.containerId!);
    twin = bare.twin;
    const bareFromStart: number[] = [];
    const bareAfterStart: number[] = [];
    const startCall: number[] = [];
    const cold: Cold[] = [];
    for (let i = 0; i <= wakes; i++) {
      // Polling from the start call, as a client that is already waiting would.
      let t0 = performance.now();
      let returned = 0;
      const started = twin.start().then(() => (returned = performance.now() - t0));
      await pollUntilAnswered(bare.port, 15_000);
      const fromStart = performance.now() - t0;
      await started;
      await twin.stop({ t: 10 });
      await sleep(300);
      // Polling only once Docker says the container runs.
      t0 = performance.now();
      await twin.start();
      await pollUntilAnswered(bare.port, 15_000);
      const afterStart = performance.now() - t0;
      await twin.stop({ t: 10 });

      const c = await coldRequest(s, nodeId, port);
      if (i === 0) continue; // warm-up round: first start of the images and code paths
      bareFromStart.push(fromStart);
      bareAfterStart.push(afterStart);
      startCall.push(returned);
      cold.push(c);
    }

    // Blocks with the activator's table (the node awake, its port out of the set) and blocks
    // without any table (the activator stopped, which keeps its table, and the table deleted),
    // in the order T N N T T N N T ..., so a drift of the machine does not favour either.
    await sequentialGets(port, 200);
    const pairs = 5;
    const blockSize = Math.ceil(warmRequests / (2 * pairs));
    const afterWake: number[] = [];
    const direct: number[] = [];
    const blockMedians: Array<[string, number]> = [];
    let tablePresent = true;
    for (let b = 0; b < 2 * pairs; b++) {
      const withTable = ((b + 1) >> 1) % 2 === 0;
      if (withTable && !tablePresent) {
        await s.startActivator();
        await s.waitForCatch(nodeId, 'awake', 10_000);
      } else if (!withTable && tablePresent) {
        await s.sys.processes('socket-activator')[0]!.stop('SIGTERM');
        await run('nft', ['delete', 'table', 'ip', s.nftTable]);
      }
      tablePresent = withTable;
      if (withTable && (await s.redirectedPorts()).includes(port)) throw new Error(`port ${port} is still redirected after the wake`);
      const times = await sequentialGets(port, blockSize);
      (withTable ? afterWake : direct).push(...times);
      blockMedians.push([withTable ? 'T' : 'N', median(times)]);
    }
    return { bareFromStart, bareAfterStart, startCall, cold, afterWake, direct, blockMedians };
  } finally {
    await twin?.remove({ force: true }).catch(() => undefined);
    await s.close();
  }
}

async function proxyPhase() {
  const s = await startScaleToZero('proxy');
  try {
    const { poolId, nodeIds } = await s.createAppPool({ name: 'bench', image: HTTP_APP_IMAGE, containerPort: HTTP_APP_PORT });
    const nodeId = nodeIds[0]!;
    const hostPort = (await s.node(nodeId))!.ports[0]!.hostPort;
    const publicPort = await s.endpoint(nodeId);
    await pollUntilAnswered(publicPort, 10_000);
    await sequentialGets(hostPort, 200);
    await sequentialGets(publicPort, 200);
    // Alternated request by request, so both see the same machine.
    const direct: number[] = [];
    const proxied: number[] = [];
    for (let i = 0; i < warmRequests; i++) {
      direct.push(...(await sequentialGets(hostPort, 1)));
      proxied.push(...(await sequentialGets(publicPort, 1)));
    }
    const policy = await s.setSleepPolicy(poolId, { enabled: true, idleWindowSec: 3600 });
    if (policy.status !== 202) throw new Error(`sleep policy refused: ${JSON.stringify(policy.body)}`);
    const cold: Cold[] = [];
    for (let i = 0; i <= wakes; i++) {
      const c = await coldRequest(s, nodeId, publicPort);
      if (i > 0) cold.push(c);
    }
    return { direct, proxied, cold };
  } finally {
    await s.close();
  }
}

const nft = await nftablesPhase();
const proxy = await proxyPhase();

console.log(`cold start of ${HTTP_APP_IMAGE} on the bridge network, ${wakes} wakes per row (after one warm-up), probe every 30 ms`);
console.log(`${''.padEnd(62)} ${'median'.padStart(10)} ${'p95'.padStart(10)}`);
row('(a) bare docker start, polled from the start call', nft.bareFromStart);
row('(a) bare docker start, polled once the start returned', nft.bareAfterStart);
row('    the docker start call itself', nft.startCall);
coldRows('(b) cold start through the activator, nftables mode', nft.cold);
coldRows('(b) cold start through the activator, proxy mode', proxy.cold);
const nftOk = nft.cold.filter((c) => !c.error).map((c) => c.ms);
if (nftOk.length > 0) {
  const signed = (ms: number) => `${ms >= 0 ? '+' : ''}${ms.toFixed(0)} ms`;
  console.log(
    `nftables cold start at the median vs bare polled from the start call: ${signed(median(nftOk) - median(nft.bareFromStart))}, ` +
      `${(median(nftOk) / median(nft.bareFromStart)).toFixed(2)}×; vs bare polled once the start returned: ` +
      `${signed(median(nftOk) - median(nft.bareAfterStart))}, ${(median(nftOk) / median(nft.bareAfterStart)).toFixed(2)}×`,
  );
}
console.log(`nftables cold starts answered in under 1 s: ${nftOk.filter((ms) => ms < 1000).length} of ${nft.cold.length}`);

console.log('');
console.log(`warm path, ${warmRequests} sequential GETs each on a new connection`);
console.log(`${''.padEnd(62)} ${'median'.padStart(10)} ${'p95'.padStart(10)}`);
row('direct to the node port, no activator table', nft.direct, 3);
row('nftables mode after the wake (table there, port not in set)', nft.afterWake, 3);
console.log(`    block medians (T: table, N: none): ${nft.blockMedians.map(([k, m]) => `${k} ${m.toFixed(3)}`).join(', ')} ms`);
row('direct to the node port (proxy run)', proxy.direct, 3);
row('proxy mode through the activator', proxy.proxied, 3);
console.log(
  `added per request at the median: nftables after the wake ${(median(nft.afterWake) - median(nft.direct)).toFixed(3)} ms ` +
    `(blocks T N N T ...), proxy mode ${(median(proxy.proxied) - median(proxy.direct)).toFixed(3)} ms (alternated request by request)`,
);
