/**
 * Concurrent connections held through the load balancer: clients and echo backends run in
 * several processes (each may open 20,000 files), the real load balancer (LB_WORKERS
 * processes) between them on its app-pool TCP listeners. Every connection is confirmed end to
 * end by an echoed byte, then held while the load balancer's memory is read from /proc.
 *
 *   npx tsx bench/lb-connections.ts [connections=50000] [workers=6] [semiSpaceMiB=2] [accept=shared|primary]
 *
 * 50,000 connections are 100,000 sockets in the load balancer: at least five workers under
 * the 20,000-file limit; six leave room for an uneven spread.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { lbPids, startBenchLb } from './support/lb.js';

const connections = Math.max(1000, Math.min(100_000, Number(process.argv[2] ?? 50_000)));
const workers = Math.max(1, Math.min(32, Number(process.argv[3] ?? 6)));
const semiSpace = process.argv[4] ?? '2';
const accept = process.argv[5] === 'primary' ? 'primary' : 'shared';
const PER_PROCESS = 16_000; // below the 20,000 open-file limit of every process
const role = fileURLToPath(new URL('./support/lb-conn-role.ts', import.meta.url));
const children: ChildProcess[] = [];

function start(args: string[]): { child: ChildProcess; line: () => Promise<string> } {
  const child = spawn(process.execPath, ['--import', 'tsx', role, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  return { child, line: async () => String((await lines.next()).value ?? '') };
}

function openFiles(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

async function main() {
  const backendCount = Math.ceil(connections / PER_PROCESS);
  const backendPorts: number[] = [];
  for (let i = 0; i < backendCount; i++) {
    const b = start(['backend']);
    backendPorts.push(Number((await b.line()).split(' ')[1]));
  }
  const lb = await startBenchLb(backendPorts, { LB_WORKERS: String(workers), LB_WORKER_SEMI_SPACE_MB: semiSpace, LB_ACCEPT: accept });
  try {
    const pids = lbPids(lb.lb.pid);
    const idleKiB = pids.reduce((s, p) => s + rssKiB(p), 0);
    const clientCount = Math.ceil(connections / PER_PROCESS);
    const t0 = performance.now();
    const clients = Array.from({ length: clientCount }, (_, i) => start(['client', lb.ports.join(','), String(Math.min(PER_PROCESS, connections - i * PER_PROCESS))]));
    const results = await Promise.all(clients.map((c) => c.line()));
    const openMs = performance.now() - t0;
    const failed = results.filter((r) => !r.startsWith('open'));
    const opened = results.reduce((s, r) => s + Number(/open (\d+)/.exec(r)?.[1] ?? 0), 0);
    const perPid = pids.map((p) => ({ pid: p, kib: rssKiB(p), files: openFiles(p) }));
    const heldKiB = perPid.reduce((s, p) => s + p.kib, 0);
    console.log(
      `lb-connections: ${opened} of ${connections} connections open and confirmed end to end in ${(openMs / 1000).toFixed(1)} s (${clientCount} client and ${backendCount} backend processes)${failed.length ? `; failures: ${failed.join(' | ')}` : ''}`,
    );
    console.log(
      `load balancer: ${pids.length - 1} workers + primary, LB_WORKER_SEMI_SPACE_MB=${semiSpace}, LB_ACCEPT=${accept}; RSS idle ${(idleKiB / 1024).toFixed(0)} MiB, with the connections held ${(heldKiB / 1024).toFixed(0)} MiB (target < 1024 MiB)`,
    );
    console.log(`per process, primary first: ${perPid.map((p) => `${(p.kib / 1024).toFixed(0)} MiB/${p.files} files`).join(', ')}`);
  } finally {
    for (const c of children) if (c.exitCode === null) process.kill(c.pid!, 'SIGTERM');
    await lb.stop();
  }
}

await main();
process.exit(0);
