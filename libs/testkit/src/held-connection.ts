import http from 'node:http';
import { isAlive } from '@switchyard/tunnels';
import { eventually } from './async.js';

// Clients of a tunnel endpoint: one request on a fresh connection, and one keep-alive
// connection held open and asked again and again, to show it survives a switch or a rotation.

/** A GET on a fresh connection, answered within 5 s or failed. */
export function plainGet(host: string, port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 5 s')));
    req.on('error', reject);
  });
}

export interface HeldConnection {
  count(): number;
  /** Waits (up to 30 s) until `n` answers came, or an error did. */
  answered(n: number): Promise<number>;
  /** Each answer's local port (one port: one connection throughout) and every error. */
  stop(): Promise<{ localPorts: number[]; errors: string[] }>;
}

/** One keep-alive connection asked `path` every 50 ms (at most two minutes), recording each answer's local port and every error. */
export function holdConnection(host: string, port: number, path: string): HeldConnection {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const localPorts: number[] = [];
  const errors: string[] = [];
  let stopped = false;
  const until = Date.now() + 120_000;
  const ask = () => {
    if (stopped || Date.now() > until) return;
    const req = http.get({ host, port, path, agent, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => {
        localPorts.push(res.socket?.localPort ?? req.socket?.localPort ?? 0);
        if (res.statusCode !== 200) errors.push(`status ${res.statusCode}`);
        setTimeout(ask, 50);
      });
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', (err) => errors.push(err.message));
  };
  ask();
  return {
    count: () => localPorts.length,
    answered: (n) =>
      eventually(
        async () => localPorts.length,
        (c) => c >= n || errors.length > 0,
        30_000,
        `${n} answers on the held connection`,
      ),
    async stop() {
      stopped = true;
      agent.destroy();
      return { localPorts, errors };
    },
  };
}

/** Those of the pids that still run (a zombie does not). */
export async function living(pids: number[]): Promise<number[]> {
  const running = await Promise.all(pids.map(isAlive));
  return pids.filter((_, i) => running[i]);
}
