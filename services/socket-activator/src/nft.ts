import { execFile } from 'node:child_process';
import type { Redirects } from './catches.js';

/** Runs `nft` with arguments and optional standard input; resolves with its standard output. */
export type NftRunner = (args: readonly string[], stdin?: string) => Promise<string>;

const runNft: NftRunner = (args, stdin) =>
  new Promise((resolve, reject) => {
    const child = execFile('nft', [...args], { timeout: 10_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`nft ${args.join(' ')}: ${stderr.trim() || err.message}`, { cause: err }));
      else resolve(stdout);
    });
    if (stdin !== undefined) child.stdin?.end(stdin);
  });

export interface NftOptions {
  table: string;
  listenPort: number;
  /** The activator's own connections leave from here; the rule lets them through. */
  sourceAddress: string;
  run?: NftRunner;
}

const SET_NAME = 'sleeping_ports';

/** The batch that makes the table, set and rule exist as configured, keeping the set's elements. */
export function setupScript(o: Omit<NftOptions, 'run'>): string {
  const t = `ip ${o.table}`;
  // `add` leaves an existing table, set or chain alone; the chain is flushed so its one rule
  // matches this configuration (the listen port may have changed). One batch: atomic.
  return [
    `add table ${t}`,
    `add set ${t} ${SET_NAME} { type inet_service; }`,
    `add chain ${t} output { type nat hook output priority -101; policy accept; }`,
    `flush chain ${t} output`,
    `add rule ${t} output ip daddr 127.0.0.1 ip saddr != ${o.sourceAddress} tcp dport @${SET_NAME} redirect to :${o.listenPort}`,
    '',
  ].join('\n');
}

const elements = (ports: readonly number[]) => `{ ${[...ports].sort((a, b) => a - b).join(', ')} }`;

/** The element ports of `nft -j list set` output (single ports only: the activator adds no ranges). */
export function parseSetPorts(json: string): number[] {
  const parsed = JSON.parse(json) as { nftables?: Array<{ set?: { elem?: unknown[] } }> };
  const set = parsed.nftables?.find((e) => e.set)?.set;
  return (set?.elem ?? []).filter((e): e is number => typeof e === 'number');
}

/**
 * The redirect set of the activator's own table, driven with the nft CLI. Keeps a mirror of
 * the elements (the activator is the set's only writer) so a removal names only present ports,
 * which nft 1.0 requires.
 */
export class NftRedirects implements Redirects {
  private readonly run: NftRunner;
  private readonly mirror = new Set<number>();
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: NftOptions) {
    this.run = o.run ?? runNft;
  }

  /** Creates what is missing; the set's elements are read into the mirror. */
  async setup(): Promise<void> {
    await this.serial(async () => {
      await this.run(['-f', '-'], setupScript(this.o));
      await this.reread();
    });
  }

  ports(): number[] {
    return [...this.mirror].sort((a, b) => a - b);
  }

  async add(ports: readonly number[]): Promise<void> {
    await this.serial(async () => {
      const fresh = [...new Set(ports)].filter((p) => !this.mirror.has(p));
      if (fresh.length === 0) return;
      await this.run(['add', 'element', 'ip', this.o.table, SET_NAME, elements(fresh)]);
      for (const p of fresh) this.mirror.add(p);
    });
  }

  async remove(ports: readonly number[]): Promise<void> {
    await this.serial(async () => {
      const present = [...new Set(ports)].filter((p) => this.mirror.has(p));
      if (present.length === 0) return;
      try {
        await this.run(['delete', 'element', 'ip', this.o.table, SET_NAME, elements(present)]);
      } catch (err) {
        // Someone changed the set behind our back: read it and delete what is really there.
        await this.reread();
        const still = present.filter((p) => this.mirror.has(p));
        if (still.length === 0) return;
        await this.run(['delete', 'element', 'ip', this.o.table, SET_NAME, elements(still)]).catch(() => {
          throw err;
        });
      }
      for (const p of present) this.mirror.delete(p);
    });
  }

  async replace(ports: readonly number[]): Promise<void> {
    await this.serial(async () => {
      const wanted = [...new Set(ports)];
      const script = [`flush set ip ${this.o.table} ${SET_NAME}`];
      if (wanted.length > 0) script.push(`add element ip ${this.o.table} ${SET_NAME} ${elements(wanted)}`);
      await this.run(['-f', '-'], `${script.join('\n')}\n`);
      this.mirror.clear();
      for (const p of wanted) this.mirror.add(p);
    });
  }

  private async reread(): Promise<void> {
    const out = await this.run(['-j', 'list', 'set', 'ip', this.o.table, SET_NAME]);
    this.mirror.clear();
    for (const p of parseSetPorts(out)) this.mirror.add(p);
  }

  // One nft command at a time, in call order, so the mirror follows the kernel's set.
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }
}
