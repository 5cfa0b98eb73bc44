// A stand-in for a gluetun VPN client container, for tests: the same HTTP proxy and control
// server surface, but traffic leaves directly from this host. No dependencies; Node 20, ESM.
import { lookup } from 'node:dns/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';

const env = process.env;
const BIND = env.BIND_ADDRESS || '0.0.0.0';
const PROXY_PORT = Number(env.HTTPPROXY_PORT ?? 8888);
const CONTROL_PORT = Number(env.CONTROL_PORT ?? 8000);
// Who forwarded a request, in the Via header, so a client can tell which node served it.
const VIA = `1.1 ${env.NODE_ID || os.hostname()}`;
const PROXY_AUTH = env.HTTPPROXY_USER ? 'Basic ' + Buffer.from(`${env.HTTPPROXY_USER}:${env.HTTPPROXY_PASSWORD ?? ''}`).toString('base64') : null;
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

const sockets = new Set(); // every socket, so shutdown does not wait for idle clients
const track = (s) => {
  sockets.add(s);
  s.once('close', () => sockets.delete(s));
};

function rawReply(socket, status, text) {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
}

function authorized(req) {
  return !PROXY_AUTH || req.headers['proxy-authorization'] === PROXY_AUTH;
}

// Where no client may go through this node, checked on the address a name resolves to: the
// load balancer's default list (services/load-balancer/src/destinations.ts), which judges IP
// literals only. FIREWALL_OUTBOUND_SUBNETS (gluetun's variable: subnets the node may reach
// outside the VPN) exempts networks from it; the node's own ports stay out of reach anyway.
const DENIED_NETWORKS = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '224.0.0.0/4',
  '240.0.0.0/4',
  '::/128',
  '::1/128',
  'fc00::/7',
  'fe80::/10',
  'ff00::/8',
];

function blockList(cidrs) {
  const list = new net.BlockList();
  for (const cidr of cidrs) {
    const [address, bits] = cidr.trim().split('/');
    const family = net.isIP(address);
    if (family === 0) throw new Error(`not an IP network: ${cidr}`);
    const max = family === 4 ? 32 : 128;
    list.addSubnet(address, bits === undefined ? max : Number(bits), family === 4 ? 'ipv4' : 'ipv6');
  }
  return list;
}

const denied = blockList(DENIED_NETWORKS);
const allowed = blockList((env.FIREWALL_OUTBOUND_SUBNETS ?? '').split(',').filter((c) => c.trim()));
const local = blockList(['0.0.0.0/8', '127.0.0.0/8', '::/128', '::1/128', ...(BIND === '0.0.0.0' ? [] : [BIND])]);

class Denied extends Error {}

// Resolves once and returns the address to dial, so the check and the connection see the same
// address (a second lookup could answer differently).
async function resolveAllowed(host, port) {
  const { address, family } = net.isIP(host) ? { address: host, family: net.isIP(host) } : await lookup(host);
  const type = family === 4 ? 'ipv4' : 'ipv6';
  if ((denied.check(address, type) && !allowed.check(address, type)) || (local.check(address, type) && (port === PROXY_PORT || port === CONTROL_PORT))) {
    throw new Denied(`${host} (${address}) is not an allowed destination`);
  }
  return address;
}

// host:port of a CONNECT target, or null when malformed.
function parseAuthority(authority) {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^\s:/[\]@]+):(\d{1,5})$/.exec(authority ?? '');
  if (!m) return null;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return null;
  return { host: m[1].replace(/^\[|\]$/g, ''), port };
}

// Fault injection for tests (not part of gluetun's surface): every proxied request waits this
// long before it is forwarded, as a node behind a slow VPN link would. Set through the control
// server: PUT /v1/faults/delay {"ms": N}.
let delayMs = 0;
const delayed = (fn) => (delayMs > 0 ? setTimeout(fn, delayMs) : fn());

const proxy = http.createServer((req, res) =>
  delayed(() => {
    if (!authorized(req)) {
      res.writeHead(407, { 'Proxy-Authenticate': 'Basic realm="exit-node"' }).end();
      return;
    }
    let target;
    try {
      target = new URL(req.url);
    } catch {
      res.writeHead(400, { 'Content-Type': 'text/plain' }).end('absolute-form http:// URL required\n');
      return;
    }
    if (target.protocol !== 'http:' || !target.hostname) {
      res.writeHead(400, { 'Content-Type': 'text/plain' }).end('only http:// is forwarded; use CONNECT\n');
      return;
    }
    const headers = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (!HOP_BY_HOP.has(name)) headers[name] = value;
    }
    headers.via = headers.via ? `${headers.via}, ${VIA}` : VIA;
    const port = Number(target.port || 80);
    resolveAllowed(target.hostname.replace(/^\[|\]$/g, ''), port).then(
      (address) => forward(req, res, { host: address, port, method: req.method, path: target.pathname + target.search, headers }),
      (err) => {
        if (err instanceof Denied) res.writeHead(403, { 'Content-Type': 'text/plain' }).end(`${err.message}\n`);
        else res.writeHead(502, { 'Content-Type': 'text/plain' }).end('bad gateway\n');
      },
    );
  }),
);

function forward(req, res, options) {
  // The client may have left while the name was resolved.
  if (req.socket.destroyed) return;
  const upstream = http.request(options);
  upstream.on('response', (up) => {
    const out = {};
    for (const [name, value] of Object.entries(up.headers)) {
      if (!HOP_BY_HOP.has(name)) out[name] = value;
    }
    res.writeHead(up.statusCode, up.statusMessage, out);
    up.pipe(res);
  });
  upstream.on('error', () => {
    if (!res.headersSent) res.writeHead(502, { 'Content-Type': 'text/plain' }).end('bad gateway\n');
    else res.destroy();
  });
  res.on('close', () => upstream.destroy());
  req.pipe(upstream);
}

proxy.on('connect', (req, client, head) =>
  delayed(() => {
    track(client);
    client.on('error', () => {});
    if (!authorized(req)) {
      client.end('HTTP/1.1 407 Proxy Authentication Required\r\n' + 'Proxy-Authenticate: Basic realm="exit-node"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    const target = parseAuthority(req.url);
    if (!target) return rawReply(client, 400, 'Bad Request');
    resolveAllowed(target.host, target.port).then(
      (address) => tunnel(client, head, address, target.port),
      (err) => rawReply(client, err instanceof Denied ? 403 : 502, err instanceof Denied ? 'Forbidden' : 'Bad Gateway'),
    );
  }),
);

function tunnel(client, head, address, port) {
  if (client.destroyed) return;
  const upstream = net.connect(port, address);
  track(upstream);
  let connected = false;
  upstream.once('connect', () => {
    connected = true;
    upstream.setNoDelay(true);
    client.setNoDelay(true);
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length) upstream.write(head);
    upstream.pipe(client);
    client.pipe(upstream);
  });
  upstream.on('error', () => {
    if (!connected) rawReply(client, 502, 'Bad Gateway');
    else client.destroy();
  });
  // A clean close ends the other side (flushing what it still holds); an error drops it.
  client.on('close', (hadError) => (hadError || !connected ? upstream.destroy() : upstream.end()));
  upstream.on('close', (hadError) => {
    if (connected) hadError ? client.destroy() : client.end();
  });
}

function json(res, status, body) {
  res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
}

const control = http.createServer((req, res) => {
  const path = new URL(req.url, 'http://control').pathname;
  if (req.method === 'GET' && path === '/v1/publicip/ip') {
    json(res, 200, { public_ip: env.PUBLIC_IP || '127.0.0.1', country: env.SERVER_COUNTRIES ?? '' });
  } else if (req.method === 'GET' && path === '/v1/openvpn/status') {
    json(res, 200, { status: 'running' });
  } else if (req.method === 'PUT' && path === '/v1/faults/delay') {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      let ms = NaN;
      try {
        ms = Number(JSON.parse(body || '{}').ms);
      } catch {
        /* answered below */
      }
      if (!Number.isInteger(ms) || ms < 0 || ms > 60_000) return json(res, 400, { error: 'ms: an integer from 0 to 60000' });
      delayMs = ms;
      json(res, 200, { ms });
    });
  } else if (req.method === 'GET' && path === '/healthz') {
    res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok');
  } else {
    json(res, 404, { error: 'not found' });
  }
});

for (const server of [proxy, control]) {
  server.on('connection', track);
  server.on('clientError', (err, socket) => {
    if (socket.writable && !socket.destroyed) rawReply(socket, 400, 'Bad Request');
    else socket.destroy();
  });
}

function listen(server, port) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, BIND, () => resolve(server.address().port));
  });
}

function shutdown(signal) {
  console.log(`exit-node: ${signal}, stopping`);
  for (const server of [proxy, control]) server.close();
  for (const s of sockets) s.destroy();
  setTimeout(() => process.exit(0), 200).unref();
}
process.once('SIGTERM', () => shutdown('SIGTERM'));
process.once('SIGINT', () => shutdown('SIGINT'));

try {
  const [p, c] = await Promise.all([listen(proxy, PROXY_PORT), listen(control, CONTROL_PORT)]);
  console.log(`exit-node: http proxy on ${BIND}:${p}, control server on ${BIND}:${c}, ` + `country=${env.SERVER_COUNTRIES ?? ''} public_ip=${env.PUBLIC_IP || '127.0.0.1'}`);
} catch (err) {
  console.error(`exit-node: cannot listen: ${err.message}`);
  process.exit(1);
}
