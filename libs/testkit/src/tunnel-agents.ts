import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import type { NatsConnection } from '@nats-io/transport-node';
import { endLeftovers } from '@switchyard/tunnels';
import { nodeView } from './activator.js';
import { eventually } from './async.js';
import { postgresPort } from './database.js';
import { watchSubjects, type SubjectWatch } from './exit-pool.js';
import { plainGet } from './held-connection.js';
import { HTTP_APP_IMAGE, HTTP_APP_PORT } from './images.js';
import { type CuttableLink, startCuttableLink } from './net.js';
import { makeTestEdge, TEST_ROOT_LINK, type TestEdge } from './netns.js';
import { repoRoot, type ServiceProcess, startService } from './processes.js';
import { startTestSystem, type TestSystem } from './system.js';

/**
 * tunnel-manager in its two roles on real parts. The edge runs in a network namespace of the
 * rig's (its endpoints, sshd and WireGuard there), joined to this machine by a veth pair, and
 * reaches NATS and Postgres through relays on the veth's root end; the node host's agent runs on
 * this machine, where Docker runs an `http-app` node and publishes its port on 127.0.0.1.
 * Clients dial the edge's address on the veth.
 */
export interface TunnelAgents {
  readonly sys: TestSystem;
  readonly nc: NatsConnection;
  /** order.evt.* and tunnel.evt.*, from the start. */
  readonly events: SubjectWatch;
  readonly edge: TestEdge;
  /** The node of the rig's one-node http-app pool. */
  readonly node: AppNodeOf;
  /** The edge's address: where its endpoints listen. */
  readonly edgeAddress: string;
  /** The first tunnel's endpoint port (TUNNEL_PORT_MIN of the edge). */
  readonly endpointPort: number;
  readonly edgeDir: string;
  readonly agentDir: string;
  readonly hostId: string;
  /** TUNNEL_WG_RANGE: the link addresses, the edge's first. */
  readonly range: string;
  edgeProcess(): ServiceProcess | undefined;
  agent(): ServiceProcess | undefined;
  startEdge(): Promise<ServiceProcess>;
  startAgent(): Promise<ServiceProcess>;
  /** Another http-app pool of the tenant's, with `nodes` nodes answering on their published ports. */
  addHttpAppPool(name: string, nodes: number): Promise<{ poolId: string; nodes: AppNodeOf[] }>;
  /** Drops (or lets through again) WireGuard's UDP at the edge, in its namespace's own table. */
  breakWireguard(broken: boolean): Promise<void>;
  close(): Promise<void>;
}

const WG_PORT = 51820;

export interface AppNodeOf {
  tenantId: string;
  poolId: string;
  nodeId: string;
  hostPort: number;
  containerPort: number;
}

export async function startTunnelAgents(opts: { agentEnv?: Record<string, string>; edgeEnv?: Record<string, string> } = {}): Promise<TunnelAgents> {
  const id = randomBytes(4).toString('hex');
  const edgeDir = `/run/switchyard-test-edge-${id}`;
  const agentDir = `/run/switchyard-test-agent-${id}`;
  const range = `10.79.${Math.floor(Math.random() * 250)}.0/24`;
  const hostId = 'docker-1';
  const endpointPort = 42000;
  const edgeAddress = TEST_ROOT_LINK.edge;
  execFileSync('bash', [`${repoRoot}/infra/tunnel-users.sh`]);

  const sys = await startTestSystem({ services: ['api-gateway', 'exit-node-manager'] });
  let edge: TestEdge | undefined;
  const relays: CuttableLink[] = [];
  let edgeProcess: ServiceProcess | undefined;
  let agent: ServiceProcess | undefined;
  const close = async () => {
    await agent?.stop();
    await edgeProcess?.stop();
    await sys.close();
    for (const r of relays) await r.close();
    await edge?.remove();
    // What a SIGKILLed run may have left: its processes, by pid file.
    for (const dir of [edgeDir, agentDir]) {
      await endLeftovers(dir);
      await rm(dir, { recursive: true, force: true });
    }
  };
  try {
    const nc = await sys.natsClient();
    const events = watchSubjects(nc, ['order.evt.*', 'tunnel.evt.*']);
    edge = await makeTestEdge();
    relays.push(await startCuttableLink(sys.nats.port, edge.rootAddress), await startCuttableLink(postgresPort, edge.rootAddress));
    const db = new URL(sys.db.urlFor('tunnel-manager'));
    db.hostname = edge.rootAddress;
    db.port = String(relays[1]!.port);
    const edgeEnv = sys.env({
      ...sys.identityEnv('tunnel-manager'),
      NATS_URL: `nats://${edge.rootAddress}:${relays[0]!.port}`,
      DATABASE_URL: db.toString(),
      TUNNEL_ROLE: 'edge',
      TUNNEL_HOST_ID: hostId,
      TUNNEL_STATE_DIR: edgeDir,
      TUNNEL_EDGE_HOST: edgeAddress,
      TUNNEL_SSH_HOST: edgeAddress,
      TUNNEL_WG_RANGE: range,
      TUNNEL_WG_PORT: String(WG_PORT),
      TUNNEL_PORT_MIN: String(endpointPort),
      TUNNEL_PORT_MAX: String(endpointPort + 4),
      TUNNEL_KEY_OVERLAP_MS: '20000',
      TUNNEL_ROTATE_MIN_INTERVAL_MS: '0',
      TUNNEL_KEY_CHECK_MS: '500',
      ...opts.edgeEnv,
    });
    const agentEnv = {
      TUNNEL_ROLE: 'node',
      TUNNEL_HOST_ID: hostId,
      TUNNEL_STATE_DIR: agentDir,
      // The agent's WireGuard listens on this machine: a UDP port unlikely to be taken.
      TUNNEL_WG_PORT: String(52000 + Math.floor(Math.random() * 900)),
      TUNNEL_RESYNC_MS: '2000',
      TUNNEL_SSH_RETRY_MS: '300',
      ...opts.agentEnv,
    };
    const inEdge = edge;
    const rig: TunnelAgents = {
      sys,
      nc,
      events,
      edge: inEdge,
      node: undefined as unknown as TunnelAgents['node'],
      edgeAddress,
      endpointPort,
      edgeDir,
      agentDir,
      hostId,
      range,
      edgeProcess: () => edgeProcess,
      agent: () => agent,
      async startEdge() {
        edgeProcess = startService('tunnel-manager', edgeEnv, [], inEdge.host.netns);
        await edgeProcess.waitForLog(/"msg":"ready"/, 30_000);
        return edgeProcess;
      },
      async startAgent() {
        agent = await sys.start('tunnel-manager', agentEnv);
        return agent;
      },
      addHttpAppPool: (name, nodes) => startHttpAppPool(sys, nc, name, nodes),
      async breakWireguard(broken) {
        if (broken) await inEdge.host.nft(`table inet sytest {\n  chain input {\n    type filter hook input priority 0;\n    udp dport ${WG_PORT} drop\n  }\n}\n`);
        else await inEdge.host.nft('delete table inet sytest');
      },
      close,
    };
    await rig.startEdge();
    await rig.startAgent();
    (rig as { node: AppNodeOf }).node = (await startHttpAppPool(sys, nc, 'meshed', 1)).nodes[0]!;
    return rig;
  } catch (err) {
    await close().catch(() => undefined);
    throw err;
  }
}

/** An app pool of http-app nodes (GET / names the node's host, GET /bytes/<n>), each answering on its published port. */
async function startHttpAppPool(sys: TestSystem, nc: NatsConnection, name: string, count: number): Promise<{ poolId: string; nodes: AppNodeOf[] }> {
  const placed = await sys.http('POST', '/v1/orders', {
    body: { type: 'pool.create', pool: { name, kind: 'app', image: HTTP_APP_IMAGE, nodes: { min: count, max: count }, ports: [{ name: 'web', containerPort: HTTP_APP_PORT }] } },
  });
  if (placed.status !== 202) throw new Error(`pool.create: ${placed.status} ${JSON.stringify(placed.body)}`);
  const order = await sys.waitForOrder(placed.body.id, ['fulfilled', 'failed'], { timeoutMs: 90_000 });
  if (order.status !== 'fulfilled') throw new Error(`pool.create failed: ${JSON.stringify(order)}`);
  const nodes: AppNodeOf[] = [];
  for (const nodeId of order.result.nodeIds as string[]) {
    const view = await nodeView(nc, nodeId);
    const hostPort = view.ports.find((p: { name: string }) => p.name === 'web').hostPort as number;
    await eventually(
      () => plainGet('127.0.0.1', hostPort, '/').catch((err: Error) => ({ status: 0, body: err.message })),
      (r) => r.status === 200,
      30_000,
      `http-app node ${nodeId} answering`,
    );
    nodes.push({ tenantId: view.tenantId, poolId: view.poolId, nodeId, hostPort, containerPort: HTTP_APP_PORT });
  }
  return { poolId: order.result.poolId ?? nodes[0]!.poolId, nodes };
}
