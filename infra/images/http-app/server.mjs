// The smallest HTTP app a sleeping node can run, for the scale-to-zero tests and benchmarks:
// GET / answers a short body, GET /bytes/<n> answers exactly n bytes. No dependencies.
import http from 'node:http';
import os from 'node:os';

const PORT = Number(process.env.PORT ?? 8080);
// Bounds /bytes/<n> so a typo cannot make the container allocate gigabytes.
const MAX_BYTES = 64 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 'x');

const sockets = new Set(); // so a stop does not wait for idle keep-alive clients
const server = http.createServer((req, res) => {
  if (req.method !== 'GET') {
    res.writeHead(405, { 'Content-Type': 'text/plain' }).end('GET only\n');
    return;
  }
  if (req.url === '/') {
    res.writeHead(200, { 'Content-Type': 'text/plain' }).end(`hello from ${os.hostname()}\n`);
    return;
  }
  const m = /^\/bytes\/(\d{1,9})$/.exec(req.url ?? '');
  if (!m || Number(m[1]) > MAX_BYTES) {
    res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
    return;
  }
  let left = Number(m[1]);
  res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(left) });
  // Written chunk by chunk with back-pressure, so large bodies do not sit in memory.
  const write = () => {
    while (left > 0) {
      const n = Math.min(left, CHUNK.length);
      left -= n;
      if (!res.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) {
        res.once('drain', write);
        return;
      }
    }
    res.end();
  };
  write();
});
server.on('connection', (s) => {
  sockets.add(s);
  s.once('close', () => sockets.delete(s));
});

// PID 1 gets no default signal handling: without these a stop waits the whole grace period.
function shutdown(signal) {
  console.log(`http-app: ${signal}, stopping`);
  server.close();
  for (const s of sockets) s.destroy();
  process.exit(0);
}
process.once('SIGTERM', () => shutdown('SIGTERM'));
process.once('SIGINT', () => shutdown('SIGINT'));

server.on('error', (err) => {
  console.error(`http-app: cannot listen on ${PORT}: ${err.message}`);
  process.exit(1);
});
server.listen(PORT, '0.0.0.0', () => console.log(`http-app: listening on 0.0.0.0:${PORT}`));
