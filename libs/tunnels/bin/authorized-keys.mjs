// sshd's AuthorizedKeysCommand for the edge of SSH tunnels: asks the edge's tunnel-manager
// which keys are valid now and prints its answer as authorized_keys lines.
//
//   authorized-keys.mjs <socket> <user> <key base64> <key type>      (sshd passes %u %k %t)
//
// The edge process serves the answer over HTTP on a unix socket (a path, so it is reached from
// sshd's network namespace whatever the edge process's is, and only by the account the socket
// belongs to). Fails closed: no answer within the timeout, an error or anything but a 200 prints
// nothing and exits 1, and sshd then refuses the key. Node built-ins only: sshd runs a copy of
// this file installed next to the edge's config, away from the package.
import { request } from 'node:http';

const TIMEOUT_MS = 3000;
const MAX_BYTES = 64 * 1024;

const [socketPath, user, key, type] = process.argv.slice(2);
if (!socketPath || !user || !key || !type) {
  process.stderr.write('usage: authorized-keys.mjs <socket> <user> <key> <type>\n');
  process.exit(1);
}

const fail = (why) => {
  process.stderr.write(`authorized-keys: ${why}\n`);
  process.exit(1);
};
setTimeout(() => fail(`no answer within ${TIMEOUT_MS} ms`), TIMEOUT_MS).unref();

const query = new URLSearchParams({ user, key, type });
const req = request({ socketPath, path: `/authorized-keys?${query}`, method: 'GET', timeout: TIMEOUT_MS }, (res) => {
  if (res.statusCode !== 200) fail(`key source answered ${res.statusCode}`);
  const chunks = [];
  let size = 0;
  res.on('data', (c) => {
    size += c.length;
    if (size > MAX_BYTES) fail('answer too large');
    chunks.push(c);
  });
  res.on('end', () => {
    process.stdout.write(Buffer.concat(chunks), () => process.exit(0));
  });
  res.on('error', (err) => fail(err.message));
});
req.on('timeout', () => req.destroy(new Error('timed out')));
req.on('error', (err) => fail(err.message));
req.end();
