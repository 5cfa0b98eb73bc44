import { startCuttableLink, type CuttableLink } from './net.js';

/**
 * A TCP listener on 127.0.0.1 relaying to the Docker engine's unix socket, which a test can cut
 * and restore: a service given DOCKER_HOST=tcp://127.0.0.1:<port> then sees dockerd go away
 * and come back, while the engine itself (shared with other tests) keeps running. Cutting drops
 * every connection, event and stats streams included.
 */
export interface DockerLink extends CuttableLink {
  readonly dockerHost: string;
}

export async function startDockerLink(socketPath = '/var/run/docker.sock'): Promise<DockerLink> {
  const link = await startCuttableLink({ path: socketPath });
  return { ...link, dockerHost: `tcp://127.0.0.1:${link.port}` };
}
