import type { TestHost } from './netns.js';

// What the tunnel tests share (a TestHost is libs/tunnels' CommandHost as it is): curl from a
// host, and a client that holds one connection open and reports every answer.

/** One run of curl in a host; rejects (with curl's exit code in the message) when it fails. */
export function curl(host: TestHost, url: string, maxTimeSec = 5): Promise<string> {
  return host.exec('curl', ['-sS', '--connect-timeout', String(Math.min(3, maxTimeSec)), '--max-time', String(maxTimeSec), url]);
}

// A client that holds one keep-alive connection to the app and asks it something every 50 ms,
// printing one JSON line per answer (with the connection's local port) or its error, then ends.
// Bounded: it stops by itself after two minutes.
export const HOLDING_CLIENT = `
import http from 'node:http';
const [host, port] = [process.argv[2], Number(process.argv[3])];
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
let n = 0;
setTimeout(() => process.exit(0), 120_000);
function ask() {
  const req = http.get({ host, port, path: '/', agent, timeout: 20_000 }, (res) => {
    const localPort = res.socket.localPort;
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (c) => (body += c));
    res.on('end', () => {
      console.log(JSON.stringify({ n: ++n, at: Date.now(), status: res.statusCode, localPort, body: body.trim() }));
      setTimeout(ask, 50);
    });
  });
  req.on('timeout', () => req.destroy(new Error('no answer within 20 s')));
  req.on('error', (err) => { console.log(JSON.stringify({ error: err.message })); process.exit(1); });
}
ask();
`;

export interface ClientLine {
  n?: number;
  at?: number;
  status?: number;
  localPort?: number;
  body?: string;
  error?: string;
}

export function clientLines(output: string): ClientLine[] {
  return output
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as ClientLine);
}
