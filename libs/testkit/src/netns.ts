import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { promisify } from 'node:util';

// Hosts of a test's own: Linux network namespaces joined by a veth pair, for what crosses a
// network (tunnels between an edge and a node's host). Everything here lives inside namespaces
// the test made: deleting a namespace removes its interfaces and nftables tables with it, and
// every process started in one is tracked by pid and ended by `remove()`.

const run = promisify(execFile);

/** The link between the two hosts: a /24 of their own, private to the namespaces. */
export const TEST_LINK = { edge: '10.77.0.1', node: '10.77.0.2', prefix: 24 } as const;
/** The link between the root namespace (this machine, where Docker runs) and an edge of the test's own. */
export const TEST_ROOT_LINK = { root: '10.76.0.1', edge: '10.76.0.2', prefix: 24 } as const;
/** The link between the node's host and a container attached to it. */
export const TEST_CONTAINER_LINK = { host: '10.78.0.1', container: '10.78.0.2', prefix: 24 } as const;

export interface TestHost {
  /** The namespace's name (`ip netns exec <name> …`). */
  readonly netns: string;
  /** Its address on the link between the two hosts. */
  readonly address: string;
  /** Runs a command in the namespace to completion; resolves with stdout, rejects with stderr. */
  exec(command: string, args: readonly string[], input?: string): Promise<string>;
  /**
   * Starts a long-running command in the namespace (`ip netns exec` execs it, so the pid is the
   * command's). Its output is kept for diagnostics; `remove()` ends it.
   */
  spawn(command: string, args: readonly string[], env?: NodeJS.ProcessEnv): TestHostProcess;
  /** Applies an nftables script in the namespace (`nft -f -`): its tables go with the namespace. */
  nft(script: string): Promise<void>;
}

export interface TestHostProcess {
  readonly pid: number;
  readonly child: ChildProcess;
  output(): string;
  /** Ends it by its pid (SIGTERM, then SIGKILL after `graceMs`) and waits for its exit. */
  stop(graceMs?: number): Promise<void>;
}

export interface TestHosts {
  /** A short id unique to this pair: interface names built from it stay unique on the machine. */
  readonly id: string;
  readonly edge: TestHost;
  readonly node: TestHost;
  /**
   * Joins a container (started with `--network none`) to the node's host: a veth pair, the
   * container at TEST_CONTAINER_LINK.container, its default route through the host.
   */
  attachContainer(containerPid: number): Promise<{ address: string }>;
  /** Ends every process started in the hosts, then deletes both namespaces. */
  remove(): Promise<void>;
}

async function stopProcess(p: ChildProcess, graceMs: number): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = once(p, 'exit');
  process.kill(p.pid!, 'SIGTERM');
  const timer = setTimeout(() => {
    if (p.exitCode === null && p.signalCode === null) process.kill(p.pid!, 'SIGKILL');
  }, graceMs);
  await exited;
  clearTimeout(timer);
}

function host(netns: string, address: string, started: TestHostProcess[]): TestHost {
  const exec = async (command: string, args: readonly string[], input?: string) => {
    const child = run('ip', ['netns', 'exec', netns, command, ...args], { timeout: 30_000, maxBuffer: 16 * 1024 * 1024 });
    if (input !== undefined) {
      child.child.stdin!.end(input);
    }
    try {
      return (await child).stdout;
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`${netns}: ${command} ${args.join(' ')}: ${e.stderr?.trim() || e.message}`);
    }
  };
  return {
    netns,
    address,
    exec,
    spawn(command, args, env) {
      // stdin is a pipe, so a test can talk to what it started (child.stdin).
      const child = spawn('ip', ['netns', 'exec', netns, command, ...args], { env: env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      const keep = (chunk: Buffer) => {
        out += chunk.toString();
        if (out.length > 200_000) out = out.slice(-100_000);
      };
      child.stdout!.on('data', keep);
      child.stderr!.on('data', keep);
      const p: TestHostProcess = { pid: child.pid!, child, output: () => out, stop: (graceMs = 3000) => stopProcess(child, graceMs) };
      started.push(p);
      return p;
    },
    async nft(script) {
      await exec('nft', ['-f', '-'], script);
    },
  };
}

/**
 * Deletes a namespace of the test's. What its processes forked (sshd's per-connection children,
 * say) is still in it and would keep it alive after `netns del`: ended first, by the pids the
 * namespace itself lists.
 */
async function deleteNamespace(ns: string): Promise<void> {
  const left = (await run('ip', ['netns', 'pids', ns]).catch(() => ({ stdout: '' }))).stdout.split('\n').filter(Boolean).map(Number);
  for (const pid of left) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
  await run('ip', ['netns', 'del', ns]).catch(() => undefined);
}

/**
 * Two namespaces, `edge` and `node`, joined by a veth pair on TEST_LINK, loopback up in both.
 * Needs root (CAP_NET_ADMIN), as the tests that use it run here.
 */
export async function makeTestHosts(): Promise<TestHosts> {
  const id = randomBytes(3).toString('hex');
  const names = { edge: `sy${id}e`, node: `sy${id}n` };
  const started: TestHostProcess[] = [];
  const created: string[] = [];
  const remove = async () => {
    await Promise.all(started.map((p) => p.stop().catch(() => undefined)));
    for (const ns of created) await deleteNamespace(ns);
  };
  try {
    for (const ns of [names.edge, names.node]) {
      await run('ip', ['netns', 'add', ns]);
      created.push(ns);
      await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    // Created in the edge namespace with its peer straight in the node's: nothing touches the root namespace.
    await run('ip', ['-n', names.edge, 'link', 'add', `sy${id}a`, 'type', 'veth', 'peer', 'name', `sy${id}b`, 'netns', names.node]);
    await run('ip', ['-n', names.edge, 'addr', 'add', `${TEST_LINK.edge}/${TEST_LINK.prefix}`, 'dev', `sy${id}a`]);
    await run('ip', ['-n', names.node, 'addr', 'add', `${TEST_LINK.node}/${TEST_LINK.prefix}`, 'dev', `sy${id}b`]);
    await run('ip', ['-n', names.edge, 'link', 'set', `sy${id}a`, 'up']);
    await run('ip', ['-n', names.node, 'link', 'set', `sy${id}b`, 'up']);
  } catch (err) {
    await remove();
    throw err;
  }
  return {
    id,
    edge: host(names.edge, TEST_LINK.edge, started),
    node: host(names.node, TEST_LINK.node, started),
    async attachContainer(containerPid) {
      const [hostSide, inside] = [`sy${id}c`, `sy${id}d`];
      await run('ip', ['-n', names.node, 'link', 'add', hostSide, 'type', 'veth', 'peer', 'name', inside, 'netns', String(containerPid)]);
      await run('ip', ['-n', names.node, 'addr', 'add', `${TEST_CONTAINER_LINK.host}/${TEST_CONTAINER_LINK.prefix}`, 'dev', hostSide]);
      await run('ip', ['-n', names.node, 'link', 'set', hostSide, 'up']);
      const inContainer = (args: string[]) => run('nsenter', ['-t', String(containerPid), '-n', 'ip', ...args]);
      await inContainer(['addr', 'add', `${TEST_CONTAINER_LINK.container}/${TEST_CONTAINER_LINK.prefix}`, 'dev', inside]);
      await inContainer(['link', 'set', inside, 'up']);
      await inContainer(['route', 'add', 'default', 'via', TEST_CONTAINER_LINK.host]);
      return { address: TEST_CONTAINER_LINK.container };
    },
    remove,
  };
}

export interface TestEdge {
  readonly host: TestHost;
  /** The root namespace's end of the veth: what the edge reaches this machine at. */
  readonly rootAddress: string;
  /** Ends every process started in it, then deletes the namespace (the veth pair goes with it). */
  remove(): Promise<void>;
}

/**
 * One namespace joined to the root namespace by a veth pair on TEST_ROOT_LINK: an edge host
 * for a node host that is this machine itself (its Docker, its published ports). The root end
 * gets an address and the one route of its /24; deleting the namespace deletes the pair.
 */
export async function makeTestEdge(): Promise<TestEdge> {
  const id = randomBytes(3).toString('hex');
  const netns = `sy${id}x`;
  const [rootSide, edgeSide] = [`sy${id}r`, `sy${id}s`];
  const started: TestHostProcess[] = [];
  let created = false;
  const remove = async () => {
    await Promise.all(started.map((p) => p.stop().catch(() => undefined)));
    if (!created) return;
    await deleteNamespace(netns);
    await run('ip', ['link', 'del', rootSide]).catch(() => undefined);
  };
  try {
    await run('ip', ['netns', 'add', netns]);
    created = true;
    await run('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    await run('ip', ['link', 'add', rootSide, 'type', 'veth', 'peer', 'name', edgeSide, 'netns', netns]);
    await run('ip', ['addr', 'add', `${TEST_ROOT_LINK.root}/${TEST_ROOT_LINK.prefix}`, 'dev', rootSide]);
    await run('ip', ['-n', netns, 'addr', 'add', `${TEST_ROOT_LINK.edge}/${TEST_ROOT_LINK.prefix}`, 'dev', edgeSide]);
    await run('ip', ['link', 'set', rootSide, 'up']);
    await run('ip', ['-n', netns, 'link', 'set', edgeSide, 'up']);
  } catch (err) {
    await remove();
    throw err;
  }
  return { host: host(netns, TEST_ROOT_LINK.edge, started), rootAddress: TEST_ROOT_LINK.root, remove };
}
