// The testkit's surface: everything tests and benches use, by name. `./fixtures` and
// `./async` are also subpath exports of their own for unit tests, which load no NATS, Docker
// or database code.

// A Switchyard of the test's own: private NATS server and database, services as processes.
export { EXIT_NODE_IMAGE, docker, startTestSystem, removeTenantContainers, poolOrder, type HttpResult, type TestSystem } from './system.js';
// Built services started as child processes.
export { repoRoot, startService, startReady, type ServiceProcess } from './processes.js';
export { startNatsServer, type NatsServer, type NatsIdentityUnderTest } from './nats-server.js';
export { createTestDatabase, postgresPort, withPgClient, type TestDatabase } from './database.js';
export { createTestRedisUsers, type TestRedisUsers } from './redis-users.js';
// Loopback ports and links a test can cut.
export { freePort, waitForPort, startCuttableLink, type CuttableLink } from './net.js';
export { startDockerLink, type DockerLink } from './docker-link.js';
// Hosts of the test's own: network namespaces joined by a veth pair (tunnels).
// Clients of a tunnel endpoint, and whether processes still run.
export { plainGet, holdConnection, living, type HeldConnection } from './held-connection.js';
// tunnel-manager as an edge (in a namespace of its own) and a node host's agent (this machine).
export { startTunnelAgents, type TunnelAgents } from './tunnel-agents.js';
export { makeTestHosts, makeTestEdge, TEST_LINK, TEST_ROOT_LINK, TEST_CONTAINER_LINK, type TestEdge, type TestHost, type TestHostProcess, type TestHosts } from './netns.js';
// The images infra/images/build.sh builds.
export { HTTP_APP_IMAGE, REDIS_IMAGE, POSTGRES_IMAGE, SSHD_IMAGE, SSHD_USER, HTTP_APP_PORT, REDIS_PORT, POSTGRES_PORT, SSHD_PORT } from './images.js';
// Exit pools: a loopback target, proxied requests, NATS requests and watched subjects.
export { startLoopbackTarget, proxiedGet, watchSubjects, natsRequest, type LoopbackTarget, type SeenMessage, type SubjectWatch } from './exit-pool.js';
export { startSpeedTestTarget, type SpeedTestTarget } from './speedtest-target.js';
// The API gateway, native and compat.
export { COMPAT_USER, COMPAT_PASSWORD, basicAuth, TEST_SERVERS, startApiSystem, expectCompatNode, expectSpeedTest, type ApiSystem } from './api.js';
// The load balancer: a routing peer, tagged backends, raw TCP exchanges.
export { LOOPBACK_LB_ENV, startRoutingPeer, startTaggedBackends, askTcp, rawExchange, type RoutingPeer, type TaggedBackends } from './lb.js';
// The socket activator: nftables, its state and metrics, app nodes.
export {
  nftTableName,
  deleteNftTable,
  redirectedPorts,
  addRedirect,
  startActivator,
  activatorState,
  metricValue,
  createAppPool,
  nodeView,
  waitForStatus,
  armAndSleep,
  rawGet,
  waitHealthy,
  expectHealthy,
  type ActivatorUnderTest,
  type AppNode,
  type RawResponse,
} from './activator.js';
// Scale to zero: the full system and real clients.
export { MODES, SCALE_TO_ZERO_SUBJECTS, startScaleToZero, httpGet, runClient, type AppPoolInput, type ScaleToZero, type HttpAnswer, type ClientRun } from './scale-to-zero.js';
export { startOtlpReceiver, type ReceivedSpan, type OtlpReceiver } from './otlp.js';
// Waiting (no vitest, no infrastructure).
export { eventually, rejectionOf, type EventuallyOptions } from './async.js';
// Socket waits for unit tests (no infrastructure).
export { closedWithin } from './sockets.js';
// View builders (no infrastructure).
export { TEST_TENANT_ID, aPoolView, aNodeView, aPublishedPort, aNodeServing, aNodeHealth } from './fixtures.js';
