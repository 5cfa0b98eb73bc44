// The edge forwarder of libs/tunnels as a process of its own, so a test can run it inside the
// edge's network namespace (`ip netns exec <edge> node --import tsx <this file> '<options>'`):
// a Node process cannot enter a namespace itself. Until tunnel-manager's edge role runs it,
// this is how the tests drive the real forwarder between real hosts.
//
// stdout: one JSON line per event ({"type":"listening","port":…}, the forwarder's events, and
// {"type":"state",…} answers). stdin: one JSON command per line:
//   {"cmd":"state"}  {"cmd":"setTarget","kind":"ssh","target":{"host":…,"port":…}}  {"cmd":"stop"}
import { createInterface } from 'node:readline';
import { type ForwarderOptions, type PathKind, startForwarder, type Target } from '@switchyard/tunnels';

const say = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);
const options = JSON.parse(process.argv[2] ?? '{}') as ForwarderOptions;
const forwarder = await startForwarder({ ...options, onEvent: (e) => say(e) });
say({ type: 'listening', host: forwarder.host, port: forwarder.port });

type Command = { cmd: 'state' } | { cmd: 'setTarget'; kind: PathKind; target: Target } | { cmd: 'stop' };
const stop = async () => {
  await forwarder.stop({ dropConnections: true });
  process.exit(0);
};
for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const c = JSON.parse(line) as Command;
  if (c.cmd === 'state') say({ type: 'state', ...forwarder.state() });
  else if (c.cmd === 'setTarget') forwarder.setTarget(c.kind, c.target);
  else if (c.cmd === 'stop') await stop();
}
await stop();
